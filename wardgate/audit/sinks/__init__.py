"""Live audit sinks: every record, once durable in the store, also streamed to files, syslog and webhooks.

They run in the audit shipper's process (``audit/shipper.py``), never in the gateway's: after each store
transaction commits, the shipper hands its records to the ``SinkHub``, which turns them into export's flat records
once (``records.py``) and offers them to every sink. Each sink has its own bounded backlog and thread
(``delivery.py``), so a slow or dead receiver delays nothing but itself; what it cannot take is dropped and
counted. The store stays the record of truth: sinks are at most a copy, and their losses are themselves audited
(``audit_sink_lost`` events, written by the shipper on its chain, at most once a minute per sink while they grow,
and once at shutdown).

The gateway passes the sinks' settings to the shipper as JSON on its command line with every secret as its
reference (``env:NAME``, ``file:PATH``); the shipper validates them again with the same models, which reads the
secrets from its inherited environment or the file. A secret is never on a command line, in a log or a record.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ...config import FileSinkConfig, SinkConfig, SyslogSinkConfig, WebhookSinkConfig
from ...store import Store, StoreError
from ...store.db import Write
from ..export import COLUMNS, Who, _session_of
from ..ocsf import to_ocsf
from .delivery import Counts, Sink, Transport
from .records import UNKNOWN, RecordMaker, SinkRecord

log = logging.getLogger("wardgate.audit.sinks")

LOSS_EVENT = "audit_sink_lost"
LOSS_REPORT_EVERY = 60.0  # seconds between two loss events of one sink while its losses grow
DRAIN_SECONDS = 2.0  # at shutdown; the gateway gives the shipper 5 s in all before it kills it

AnySink = FileSinkConfig | SyslogSinkConfig | WebhookSinkConfig
_ADAPTER: TypeAdapter[list[AnySink]] = TypeAdapter(list[SinkConfig])


def sinks_argument(sinks: Sequence[AnySink]) -> str:
    """The sinks' settings as the shipper's ``--sinks`` argument: JSON with secrets as their references only."""

    def scrub(v: Any) -> Any:
        if isinstance(v, dict):
            return v["ref"] if set(v) == {"ref", "value"} else {k: scrub(x) for k, x in v.items()}
        return v

    return json.dumps([scrub(s.model_dump(mode="json")) for s in sinks], separators=(",", ":"))


def parse_sinks(text: str) -> list[AnySink]:
    """The settings ``sinks_argument`` wrote, validated again (secrets read from their references). Raises
    ValueError with the problems, each with its place, never with a secret's value."""
    try:
        raw = json.loads(text)
        return _ADAPTER.validate_python(raw, context={"base": Path.cwd()})
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from None


def transport(cfg: AnySink, procid: str) -> Transport:
    """The registry: a sink's settings -> the transport that delivers them (imported on use: httpx only when a
    webhook is configured)."""
    if isinstance(cfg, FileSinkConfig):
        from .file import FileTransport

        return FileTransport(cfg)
    if isinstance(cfg, SyslogSinkConfig):
        from .syslog import SyslogTransport

        return SyslogTransport(cfg, procid)
    from .webhook import WebhookTransport

    return WebhookTransport(cfg)


def store_lookup(store: Store) -> Callable[[str], Who]:
    """Who a session is, from the store (for a session that started before this shipper did)."""

    def lookup(session_id: str) -> Who:
        try:
            who = _session_of(store, session_id, {})
        except StoreError as exc:
            log.debug("cannot look up session %s for the audit sinks: %s", session_id, exc)
            return UNKNOWN
        return UNKNOWN if who == UNKNOWN else who

    return lookup


class OcsfLines:
    """Records re-lined as OCSF events, for the sinks that want them (their fields stay export's: syslog's
    structured data and severity read those). Like ``ocsf.events`` over an export, a statement and a session's
    end take the client address from the session's start; at most ``max_sessions`` open sessions are
    remembered (oldest first out), so a gateway that runs for months does not grow with every session."""

    def __init__(self, max_sessions: int = 50_000) -> None:
        self.max_sessions = max_sessions
        self._addrs: OrderedDict[str, str] = OrderedDict()
        self._blank = dict.fromkeys(COLUMNS)

    def __call__(self, records: Sequence[SinkRecord]) -> list[SinkRecord]:
        out = []
        for rec in records:
            f = rec.fields
            session, kind = f.get("session_id"), rec.type
            if kind == "session_start" and session and f.get("client_addr"):
                self._addrs[session] = f["client_addr"]
                if len(self._addrs) > self.max_sessions:
                    self._addrs.popitem(last=False)
            addr = self._addrs.get(session) if session and kind in ("statement", "session_end") else None
            if kind == "session_end" and session:
                self._addrs.pop(session, None)
            line = _encode_sorted(to_ocsf({**self._blank, **f}, addr))
            out.append(replace(rec, line=line))
        return out


_encode_sorted = json.JSONEncoder(sort_keys=True).encode  # what `audit export --format ocsf` writes


@dataclass(frozen=True)
class LossReport:
    sink: str
    kind: str
    counts: Counts
    error: str
    final: bool

    def event(self, at: float) -> dict[str, Any]:
        """The values of its ``events`` row."""
        c = self.counts
        detail = {"sink": self.sink, "sink_type": self.kind, "delivered": c.delivered, "dropped": c.dropped,
                  "failed": c.failed, "abandoned": c.abandoned, "lost": c.lost, "final": self.final}
        if self.error:
            detail["last_error"] = self.error
        return {"at": at, "kind": LOSS_EVENT, "subject": None, "connection": None, "client_addr": None,
                "session_id": None, "detail": json.dumps(detail, sort_keys=True)}


class SinkHub:
    """Every configured sink, fed by the shipper after each commit."""

    def __init__(self, sinks: list[Sink], make_records: Callable[[Sequence[Write]], Any],
                 formats: Sequence[str] = ()) -> None:
        self.sinks = sinks
        self.make_records = make_records
        self.formats = list(formats) or ["jsonl"] * len(sinks)  # each sink's: export's lines, or OCSF events
        self._ocsf = OcsfLines() if "ocsf" in self.formats else None
        self.closed = False
        self._reported: dict[str, int] = {}  # sink -> lost count in its last loss event
        self._reported_at: dict[str, float] = {}

    @classmethod
    def open(cls, configs: Sequence[AnySink], store: Store, procid: str) -> SinkHub:
        sinks = [Sink(c.name, c.type, transport(c, procid), c.max_backlog) for c in configs]
        hub = cls(sinks, RecordMaker(store_lookup(store)), [c.format for c in configs])
        for s in sinks:
            s.start()
        log.info("audit sinks: %s", ", ".join(f"{s.name} ({s.kind})" for s in sinks))
        return hub

    def offer(self, writes: Sequence[Write]) -> None:
        """Hand committed writes to every sink. Never raises and never blocks on a receiver."""
        if self.closed or not self.sinks:
            return
        try:
            records = self.make_records(writes)
        except Exception as exc:  # a record the mapping cannot read must not stop the store's shipping
            log.error("audit records could not be prepared for the sinks (%s: %s); they are dropped",
                      exc.__class__.__name__, exc)
            return
        if records:
            ocsf = self._ocsf(records) if self._ocsf is not None else records
            for s, fmt in zip(self.sinks, self.formats, strict=True):
                s.offer(ocsf if fmt == "ocsf" else records)

    def loss_reports(self, now: float, final: bool = False) -> list[LossReport]:
        """Loss events due: a sink whose losses grew since its last event, at most one a LOSS_REPORT_EVERY; at
        the end (``final``) one for every sink that lost anything, with its closing counts."""
        due = []
        for s in self.sinks:
            c = s.counts()
            grew = c.lost > self._reported.get(s.name, 0)
            waited = now - self._reported_at.get(s.name, -LOSS_REPORT_EVERY) >= LOSS_REPORT_EVERY
            if (final and c.lost) or (grew and waited):
                due.append(LossReport(s.name, s.kind, c, s.last_error, final))
        return due

    def reported(self, reports: Sequence[LossReport], now: float) -> None:
        """The reports are in the store."""
        for r in reports:
            self._reported[r.sink] = r.counts.lost
            self._reported_at[r.sink] = now

    def close(self, timeout: float = DRAIN_SECONDS) -> None:
        """Let every sink drain for up to ``timeout`` seconds (together), then count what is left as abandoned."""
        if self.closed:
            return
        self.closed = True
        deadline = time.monotonic() + timeout
        for s in self.sinks:
            s.drain()
        for s in self.sinks:
            s.join(deadline - time.monotonic())
        for s in self.sinks:
            s.abort()
        deadline = time.monotonic() + 0.2  # a moment for sends in progress to end; the threads are daemons
        for s in self.sinks:
            s.join(deadline - time.monotonic())
        for s in self.sinks:
            left = s.abandon()
            c = s.counts()
            (log.warning if c.lost else log.info)(
                "audit sink %s (%s): %d delivered, %d dropped (backlog full), %d failed, %d abandoned%s",
                s.name, s.kind, c.delivered, c.dropped, c.failed, c.abandoned,
                f" ({left} still waiting at shutdown)" if left else "")
