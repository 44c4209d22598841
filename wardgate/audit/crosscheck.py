"""The tables people read (sessions, statements, events) checked against the audit chain they were written from.

The chain proves its own entries; what `wardgate sessions show` and the exports read are the tables. Replaying the
chain's records gives what each table must hold: a session is its insert with its updates applied in order, a
statement is found by (session, seq), an event by its whole content (events have no natural key, so they are
compared as a multiset). A row that differs, is missing, or has no record in any chain is reported.

Times are compared to the microsecond: the chain keeps what the gateway journaled (epoch seconds), the table the
timestamp the store made of it. Rows older than the first chain entry (a store upgraded from before the chain
existed) are counted as not covered, not as problems.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from ..store import schema
from ..store.db import _TIME_COLUMNS, INSERT_COLUMNS, Store, utc
from .chain import SAMPLE_DIGEST, Entry, Problem, entry_hash, entry_records, sample_digest
from .retention import horizon_of

TIME_COLUMNS = {t: _TIME_COLUMNS[t] for t in ("sessions", "statements", "events")}  # the store's, for these tables
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):  # epoch seconds, made a timestamp the way the store makes it
        value = datetime.fromtimestamp(float(value), UTC)
    dt = utc(value)
    assert dt is not None
    return (dt - EPOCH) // _US


_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - EPOCH


def _norm(table: str, column: str, value: Any) -> Any:
    if column in TIME_COLUMNS[table]:
        return _micros(value)
    return value


def _same(table: str, column: str, recorded: Any, stored: Any) -> bool:
    if (table, column) == ("statements", "result_sample") and isinstance(recorded, str) \
            and recorded.startswith(SAMPLE_DIGEST):  # chained by digest (records of older stores hold the text)
        return isinstance(stored, str) and sample_digest(stored) == recorded
    return bool(_norm(table, column, recorded) == _norm(table, column, stored))


def _values(table: str, values: Any) -> dict[str, Any]:
    if isinstance(values, dict):
        return values
    return dict(zip(INSERT_COLUMNS[table], values, strict=False))


def _parse(record: str) -> tuple[str, str | None, dict[str, Any]] | None:
    """A record as (table, key, values); None for anything that is not one (a damaged entry, reported by the
    chain walk already)."""
    try:
        table, key, raw = json.loads(record)
    except (ValueError, TypeError):
        return None
    if table not in TIME_COLUMNS or not isinstance(raw, dict | list):
        return None
    return table, key, _values(table, raw)


def expected(entries: Iterable[Entry]) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, int], dict[str, Any]],
                                                 list[dict[str, Any]]]:
    """What the tables must hold, replayed from the chain: sessions by id, statements by (session, seq), events."""
    sessions: dict[str, dict[str, Any]] = {}
    statements: dict[tuple[str, int], dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for e in entries:
        for record in entry_records(e.record):
            parsed = _parse(record)
            if parsed is None:
                continue
            table, key, values = parsed
            if table == "sessions":
                if key is None:
                    sessions[values["id"]] = dict(values)
                else:
                    sessions.setdefault(values[key], {}).update(values)
            elif table == "statements":
                if key is None:
                    statements[(values["session_id"], int(values["seq"]))] = values
                # else: an update of a statement (its outcome), by id: not written by this gateway today
            elif table == "events":
                events.append(values)
    return sessions, statements, events


def cross_check(store: Store, entries: list[Entry], chain_started_at: str | None) -> tuple[list[Problem], int]:
    """Problems found, and how many rows predate the chain (not covered). Only entries whose own hash holds are
    replayed: one that fails is reported by the chain walk, and its content is not to be believed."""
    good = [e for e in entries if entry_hash(e.chain, e.seq, e.at, e.prev, e.record) == e.hash]
    sessions, statements, events = expected(good)
    problems: list[Problem] = []
    # Rows and records older than the store's chaining, or than the latest retention horizon a verified
    # audit_pruned event states, are not compared: pruning removed one or the other on purpose.
    horizon = horizon_of([(ev.get("kind"), ev.get("detail")) for ev in events])
    start = max((t for t in (_micros(chain_started_at), _micros(horizon)) if t is not None), default=None)

    def pruned(when: Any) -> bool:
        t = _micros(when)
        return start is not None and t is not None and t < start

    old = 0

    def report(table: str, what: str, detail: str) -> None:
        problems.append(Problem(table, 0, what, detail))

    def before_chain(when: Any) -> bool:
        nonlocal old
        t = _micros(when)
        if start is not None and t is not None and t < start:
            old += 1
            return True
        return False

    with store._guard(), store.engine.connect() as conn:
        def keyed(table: str, want_by: Mapping[Any, dict[str, Any]], key_of: Callable[[Any], Any],
                  name_of: Callable[[Any], str]) -> None:
            """A table whose rows have a key in the records: each row against its record(s), then what is gone."""
            seen = set()
            for row in conn.execute(select(schema.metadata.tables[table])):
                r = row._mapping
                k = key_of(r)
                seen.add(k)
                want = want_by.get(k)
                if want is None:
                    if not before_chain(r["started_at"]):
                        report(table, "inserted", f"{name_of(k)} is in no audit chain")
                    continue
                bad = [c for c, v in want.items() if c in r and not _same(table, c, v, r[c])]
                if bad:
                    report(table, "altered", f"{name_of(k)} differs from its audit records in: "
                                             f"{', '.join(sorted(bad))}")
            for k in sorted(k for k, v in want_by.items() if k not in seen and not pruned(v.get("started_at"))):
                report(table, "removed", f"{name_of(k)} of the audit chain is not in the table")

        keyed("sessions", sessions, lambda r: r["id"], lambda k: f"session {k}")
        keyed("statements", statements, lambda r: (r["session_id"], int(r["seq"])),
              lambda k: f"statement #{k[1]} of session {k[0]}")
        cols = INSERT_COLUMNS["events"]
        want_events = Counter(tuple(_norm("events", c, e.get(c)) for c in cols) for e in events
                              if not pruned(e.get("at")))
        have_events = Counter(tuple(_norm("events", c, row._mapping[c]) for c in cols)
                              for row in conn.execute(select(schema.events)) if not before_chain(row._mapping["at"]))
        for ev, n in (have_events - want_events).items():
            report("events", "altered", f"{n} {dict(zip(cols, ev, strict=True)).get('kind')} event(s) in the table "
                                        f"match no audit record (changed or added)")
        for ev, n in (want_events - have_events).items():
            report("events", "removed", f"{n} {dict(zip(cols, ev, strict=True)).get('kind')} event(s) of the audit "
                                        f"chain are not in the table (removed or changed)")
    return problems, old
