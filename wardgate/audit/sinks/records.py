"""The writes the shipper just committed, as the flat records `wardgate audit export` writes.

A live record and the same record exported later from the store are one mapping (``audit/export.py`` owns it),
with the same times (export reads back what the journal carried, epoch seconds, at microsecond precision) and the
same JSON line (keys sorted, absent fields left out): a receiver can deduplicate or reconcile the two.

Two differences follow from reading writes instead of rows. A session's end is an update that names only the
session, so its user and connection come from the start this shipper saw (or, after a restart, the store). And an
update that only renames the session's ``application_name`` (a client's ``SET`` after login) is no record of its
own: the export shows the final name in ``session_start``, the live ``session_start`` the name at login.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...store.db import INSERT_COLUMNS, Write
from ..chain import iso
from ..export import Who, event_record, session_end_record, session_start_record, statement_record

log = logging.getLogger("wardgate.audit.sinks")

UNKNOWN: Who = ("", "", "[]", None)  # what export says of a session it cannot find

# export's json.dumps(..., sort_keys=True, default=str), without building an encoder for every record
_encode = json.JSONEncoder(sort_keys=True, default=str).encode


def record_time(value: float | datetime) -> str:
    """chain.iso's text (what export writes): isoformat costs half of strftime, and this runs for every record."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    return iso(value)


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One record, serialised once for every sink: ``line`` is its JSON line (without the newline)."""

    type: str
    time: str
    fields: dict[str, Any]  # the record without its absent (None) fields, time included
    line: str


def sink_record(rec: Mapping[str, Any]) -> SinkRecord:
    """A record as export's JSON lines carry it: None fields left out, keys sorted."""
    fields = {k: v for k, v in rec.items() if v is not None}
    return SinkRecord(str(fields.get("type", "")), str(fields.get("time", "")), fields, _encode(fields))


def _row(w: Write) -> Mapping[str, Any]:
    return w.values if isinstance(w.values, dict) else dict(zip(INSERT_COLUMNS[w.table], w.values, strict=True))


class RecordMaker:
    """Turns committed writes into records, remembering who each open session is for the records that follow.

    ``lookup`` answers for a session this shipper did not see start (it started before a shipper restart); it is
    only asked then. At most ``max_sessions`` are remembered (least recently used go first, and a session's entry
    goes when it ends), so a gateway that runs for months does not grow with every session it ever had.
    """

    def __init__(self, lookup: Callable[[str], Who], max_sessions: int = 50_000) -> None:
        self.lookup = lookup
        self.max_sessions = max_sessions
        self._who: OrderedDict[str, Who] = OrderedDict()

    def __call__(self, writes: Iterable[Write]) -> list[SinkRecord]:
        out: list[SinkRecord] = []
        for w in writes:
            if w.table == "statements":
                r = _row(w)
                rec = statement_record(r, self._session(r["session_id"]))
                at = r["started_at"]
            elif w.table == "events":
                r = _row(w)
                rec = event_record(r)
                at = r["at"]
            elif w.table == "sessions" and w.key is None:
                r = _row(w)
                self._remember(r["id"], (r["user"], r["connection"], r["groups"], r["issuer"]))
                rec = session_start_record(r)
                at = r["started_at"]
            elif w.table == "sessions" and isinstance(w.values, dict) and w.values.get("ended_at") is not None:
                r = w.values
                user, conn, _, _ = self._session(r["id"])
                self._who.pop(r["id"], None)
                rec = session_end_record({"user": user, "connection": conn, "end_reason": None,
                                          "bytes_from_client": None, "bytes_to_client": None, **r})
                at = r["ended_at"]
            else:
                continue  # not an audit record (state tables), or a session's application_name changing
            out.append(sink_record({"time": record_time(at) if at is not None else None, **rec}))
        return out

    def _remember(self, session_id: str, who: Who) -> None:
        self._who[session_id] = who
        if len(self._who) > self.max_sessions:
            self._who.popitem(last=False)

    def _session(self, session_id: str) -> Who:
        who = self._who.get(session_id)
        if who is not None:
            self._who.move_to_end(session_id)
            return who
        who = self.lookup(session_id)
        if who is not UNKNOWN:
            self._remember(session_id, who)
        return who
