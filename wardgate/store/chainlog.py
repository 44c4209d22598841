"""Appending audit writes to their writer's hash chain, in the transaction that applies them.

Called by ``Store.write`` with the DB-API cursor of its transaction, so the audit records and their chain entry
(one per transaction: audit/chain.py says why) are committed together or not at all. The chain's head row is
locked (``FOR UPDATE`` on PostgreSQL; SQLite already holds its database write lock once the records are
written), so two writers of one chain (two CLI commands) append one after the other instead of forking it.
Replicas write chains of their own and never wait on each other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..audit.chain import GENESIS, Entry, canonical, canonical_insert, entry_text, iso, link, sample_digest
from . import schema

#: The tables whose writes are audit records (the rest of the store is state: tokens, reviews, grants...; their
#: changes reach the audit as events).
CHAINED = frozenset({"sessions", "statements", "events"})
# where a positional statements insert holds its result sample (store.db.INSERT_COLUMNS order)
_SAMPLE_AT = [c.name for c in schema.statements.columns
              if not (c.primary_key and c.autoincrement is True)].index("result_sample")


def records(writes: Sequence[Any]) -> list[str]:
    """The canonical records of the audit writes among ``writes``; a statement's result sample is recorded by its
    digest (chain.sample_digest)."""
    out = []
    at = _SAMPLE_AT
    for w in writes:
        if w.table not in CHAINED:
            continue
        values = w.values
        if isinstance(values, tuple) and w.key is None:  # an insert in insert-column order
            if w.table == "statements" and len(values) > at and isinstance(values[at], str):
                out.append(canonical_insert(w.table, values, at, sample_digest(values[at])))
            else:
                out.append(canonical_insert(w.table, values))
            continue
        if w.table == "statements" and isinstance(values, dict) and isinstance(values.get("result_sample"), str):
            values = {**values, "result_sample": sample_digest(values["result_sample"])}
        out.append(canonical(w.table, w.key, values))
    return out


def append(cur: Any, is_sqlite: bool, chain: str, recs: list[str]) -> Entry:
    """Append ``recs`` (canonical records) to ``chain`` as one entry; returns it, the chain's new head."""
    mark = "?" if is_sqlite else "%s"
    cur.execute(f"INSERT INTO audit_heads (chain, seq, hash, first_seq, first_prev) VALUES ({mark}, 0, {mark}, 1, "
                f"{mark}) ON CONFLICT (chain) DO NOTHING", (chain, GENESIS, GENESIS))
    lock = "" if is_sqlite else " FOR UPDATE"
    cur.execute(f"SELECT seq, hash FROM audit_heads WHERE chain = {mark}{lock}", (chain,))
    seq, head = cur.fetchone()
    (last,) = link(chain, int(seq), str(head), iso(time.time()), [entry_text(recs)])
    t = schema.audit_entries
    cols = ", ".join(c.name for c in t.columns)
    cur.execute(f"INSERT INTO audit_entries ({cols}) VALUES ({', '.join(mark for _ in t.columns)})",
                (last.chain, last.seq, last.at, last.prev, last.record, last.hash))
    cur.execute(f"UPDATE audit_heads SET seq = {mark}, hash = {mark} WHERE chain = {mark}",
                (last.seq, last.hash, chain))
    return last
