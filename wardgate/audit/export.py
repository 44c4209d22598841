"""`wardgate audit export`: the audit as one time-ordered stream, for SIEMs and auditors.

Three kinds of record come out, each a flat mapping with the same leading fields (``time``, ``type``, ``user``,
``connection``, ``session_id``): ``session_start``/``session_end`` from sessions, ``statement`` from statements
(literals already redacted: what is exported is what was recorded, and nothing else is), and one per event
(``auth_failed``, ``review_approved``, ``config_loaded``...). Rows are streamed from the store in time order per
table and merged, so an export of a year does not sit in memory.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select

from ..store import Store, schema
from ..store.db import utc

COLUMNS = ["time", "type", "user", "connection", "session_id", "groups", "auth_method", "issuer", "client_addr",
           "application_name", "seq", "kind", "statement", "status", "decision", "rule", "reason", "sqlstate",
           "error_message", "rows", "duration_ms", "masked", "end_reason", "detail"]


def _iso(value: Any) -> str | None:
    dt = utc(value) if isinstance(value, datetime) else None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt is not None else None


def _stream(store: Store, table: Any, time_col: Any, since: datetime | None, until: datetime | None
            ) -> Iterator[Any]:
    q = select(table).order_by(time_col)
    if since is not None:
        q = q.where(time_col >= since)
    if until is not None:
        q = q.where(time_col < until)
    with store._guard(), store.engine.connect() as conn:
        yield from (r._mapping for r in conn.execute(q.execution_options(yield_per=2000)))


# One row (or the journaled write it came from) -> one record, without its time. Shared with the live sinks
# (audit/sinks/records.py), so a record streamed live and the same record exported later are the same mapping.

Who = tuple[str, str, str, str | None]  # a session's user, connection, groups (JSON), issuer


def session_start_record(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "session_start", "user": r["user"], "connection": r["connection"], "session_id": r["id"],
            "groups": r["groups"], "auth_method": r["auth_method"], "issuer": r["issuer"],
            "client_addr": r["client_addr"], "application_name": r["application_name"]}


def session_end_record(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "session_end", "user": r["user"], "connection": r["connection"], "session_id": r["id"],
            "end_reason": r["end_reason"],
            "detail": json.dumps({"bytes_from_client": r["bytes_from_client"],
                                  "bytes_to_client": r["bytes_to_client"]})}


def statement_record(r: Mapping[str, Any], who: Who) -> dict[str, Any]:
    """A statement carries the identity (user, groups, issuer) its decision was made for: its session's."""
    user, conn, groups, issuer = who
    return {"type": "statement", "user": user, "connection": conn, "session_id": r["session_id"],
            "groups": groups, "issuer": issuer,
            "seq": r["seq"], "kind": r["kind"], "statement": r["text"], "status": r["status"],
            "decision": r["decision"], "rule": r["rule"], "reason": r["reason"], "sqlstate": r["sqlstate"],
            "error_message": r["error_message"], "rows": r["row_count"], "duration_ms": r["duration_ms"],
            "masked": r["masked"]}


def event_record(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": r["kind"], "user": r["subject"], "connection": r["connection"],
            "session_id": r["session_id"], "client_addr": r["client_addr"], "detail": r["detail"]}


def records(store: Store, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
    """Every audit record in [since, until), in time order."""
    s, st, ev = schema.sessions, schema.statements, schema.events
    # session id -> who and where, for the statements that follow: each statement record carries the identity
    # (user, groups, issuer) its decision was made for
    users: dict[str, tuple[str, str, str, str | None]] = {}

    def starts() -> Iterator[tuple[str, int, dict[str, Any]]]:
        for r in _stream(store, s, s.c.started_at, since, until):
            users[r["id"]] = (r["user"], r["connection"], r["groups"], r["issuer"])
            yield _iso(r["started_at"]) or "", 0, session_start_record(r)

    def ends() -> Iterator[tuple[str, int, dict[str, Any]]]:
        for r in _stream(store, s, s.c.ended_at, since, until):
            if r["ended_at"] is None:
                continue
            yield _iso(r["ended_at"]) or "", 2, session_end_record(r)

    def statements() -> Iterator[tuple[str, int, dict[str, Any]]]:
        for r in _stream(store, st, st.c.started_at, since, until):
            who = users.get(r["session_id"]) or _session_of(store, r["session_id"], users)
            yield _iso(r["started_at"]) or "", 1, statement_record(r, who)

    def events() -> Iterator[tuple[str, int, dict[str, Any]]]:
        for r in _stream(store, ev, ev.c.at, since, until):
            yield _iso(r["at"]) or "", 1, event_record(r)

    # sessions start before their statements: the start stream is drained first at equal times (rank 0)
    for at, _, rec in heapq.merge(starts(), statements(), events(), ends(), key=lambda x: (x[0], x[1])):
        yield {"time": at, **rec}


def _session_of(store: Store, session_id: str, cache: dict[str, tuple[str, str, str, str | None]]
                ) -> tuple[str, str, str, str | None]:
    """A statement in range whose session started before it."""
    s = schema.sessions
    with store._guard(), store.engine.connect() as conn:
        row = conn.execute(select(s.c.user, s.c.connection, s.c.groups, s.c.issuer)
                           .where(s.c.id == session_id)).first()
    cache[session_id] = (row[0], row[1], row[2], row[3]) if row else ("", "", "[]", None)
    return cache[session_id]


def write(out: IO[str], fmt: str, rows: Iterator[dict[str, Any]]) -> int:
    """Write ``rows`` as JSON lines, OCSF events as JSON lines (``ocsf``, one event per record: audit/ocsf.py), or
    CSV (one header, the COLUMNS); returns how many. Each row is written as it comes: nothing is collected."""
    n = 0
    if fmt == "jsonl":
        for rec in rows:
            out.write(json.dumps({k: v for k, v in rec.items() if v is not None}, sort_keys=True, default=str))
            out.write("\n")
            n += 1
        return n
    if fmt == "ocsf":
        from .ocsf import events

        for event in events(rows):
            out.write(json.dumps(event, sort_keys=True))
            out.write("\n")
            n += 1
        return n
    writer = csv.DictWriter(out, COLUMNS, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for rec in rows:
        writer.writerow(rec)
        n += 1
    return n


def to_text(store: Store, fmt: str, since: datetime | None = None, until: datetime | None = None) -> str:
    buf = io.StringIO()
    write(buf, fmt, records(store, since, until))
    return buf.getvalue()
