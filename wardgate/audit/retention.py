"""Retention: audit older than a horizon is deleted without breaking the verification of what remains.

A chain is cut only at a signed checkpoint: the entries up to it go, the chain's head row keeps where it now
starts (``first_seq``) and the hash it starts from (``first_prev``, the checkpoint's hash), and the checkpoint
stays, so `audit verify` checks that the new start is exactly a signed position. The tables' rows older than the
horizon go too. The prune itself is an ``audit_pruned`` event on the chain ``cli``, chained like any other: the
horizon verification uses to tell pruned rows from removed ones comes from that signed chain, not from a table
anyone could edit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, exists, select, update

from ..store import Store, schema
from ..store.auditlog import AuditLog
from ..store.db import Write
from .chain import CLI_CHAIN, iso


@dataclass
class Pruned:
    before: str
    chains: dict[str, int] = field(default_factory=dict)  # chain -> the seq it now starts after
    entries: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def prune(store: Store, before: str, by: str) -> Pruned:
    """Delete audit older than ``before`` (an ISO UTC time, as the chain writes them)."""
    log = AuditLog(store)
    heads = log.heads()
    out = Pruned(before)
    e, h = schema.audit_entries, schema.audit_heads
    with store._guard(), store.engine.begin() as conn:
        for chain, head in heads.items():
            first = int(head["first_seq"])
            # the last signed position whose entry is older than the horizon (entries are in time order)
            cut = None
            for cp in reversed(log.checkpoints(chain)):
                if cp.seq < first:
                    break
                at = conn.execute(select(e.c.at).where(e.c.chain == chain, e.c.seq == cp.seq)).scalar()
                if at is not None and at < before and cp.seq < int(head["seq"]):
                    cut = cp
                    break
            if cut is None:
                continue
            gone = conn.execute(delete(e).where(e.c.chain == chain, e.c.seq <= cut.seq)).rowcount
            conn.execute(update(h).where(h.c.chain == chain).values(first_seq=cut.seq + 1, first_prev=cut.hash))
            out.chains[chain] = cut.seq
            out.entries += gone
        horizon = _as_time(before)
        st, se, ev = schema.statements, schema.sessions, schema.events
        out.rows["statements"] = conn.execute(delete(st).where(st.c.started_at < horizon)).rowcount
        out.rows["sessions"] = conn.execute(delete(se).where(and_(
            se.c.ended_at.is_not(None), se.c.ended_at < horizon,
            ~exists().where(st.c.session_id == se.c.id)))).rowcount
        out.rows["events"] = conn.execute(delete(ev).where(ev.c.at < horizon)).rowcount
    store.write([Write("events", {
        "at": time.time(), "kind": "audit_pruned", "subject": by, "connection": None, "client_addr": "cli",
        "session_id": None, "detail": json.dumps({"before": before, "chains": out.chains, "entries": out.entries,
                                                  "rows": out.rows}, sort_keys=True)})], chain=CLI_CHAIN)
    return out


def _as_time(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def horizon_of(records: list[tuple[Any, Any]]) -> str | None:
    """The latest horizon an ``audit_pruned`` event among verified records states (records: (kind, detail))."""
    best = None
    for kind, detail in records:
        if kind != "audit_pruned":
            continue
        try:
            before = json.loads(detail)["before"] if isinstance(detail, str) else None
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(before, str) and (best is None or before > best):
            best = before
    return best


def retention_cutoff(seconds: float) -> str:
    return iso(time.time() - seconds)
