"""Reading the hash-chained audit (and writing its checkpoints and public keys): what `audit verify` walks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from ..audit.chain import Checkpoint, Entry
from . import schema
from .db import Store, StoreError, now

_E = schema.audit_entries
_H = schema.audit_heads
_C = schema.audit_checkpoints
_K = schema.audit_keys


class AuditLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add_checkpoint(self, cp: Checkpoint) -> bool:
        """Store a signed checkpoint; False if that chain position was signed already (another signer)."""
        try:
            with self.store._guard(), self.store.engine.begin() as conn:
                conn.execute(insert(_C).values(chain=cp.chain, seq=cp.seq, hash=cp.hash, at=cp.at, kid=cp.kid,
                                               signature=cp.signature))
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    def publish_key(self, kid: str, public_pem: str) -> None:
        """Keep a checkpoint key's public half in the store (auditors should hold their own copy: `audit
        public-key`; a key read from the store proves only as much as the store)."""
        with self.store._guard(), self.store.engine.begin() as conn:
            if conn.execute(select(_K.c.kid).where(_K.c.kid == kid)).first() is None:
                conn.execute(insert(_K).values(kid=kid, public_pem=public_pem, created_at=now()))

    def keys(self) -> dict[str, str]:
        with self.store._guard(), self.store.engine.connect() as conn:
            return {r.kid: r.public_pem for r in conn.execute(select(_K))}

    def chain_started_at(self) -> str | None:
        """When this store began chaining (its migration to the chained audit): older rows are not covered."""
        t = schema.audit_meta
        with self.store._guard(), self.store.engine.connect() as conn:
            value = conn.execute(select(t.c.value).where(t.c.name == "chain_started_at")).scalar()
        return str(value) if value is not None else None

    def heads(self) -> dict[str, dict[str, Any]]:
        with self.store._guard(), self.store.engine.connect() as conn:
            return {r.chain: dict(r._mapping) for r in conn.execute(select(_H))}

    def chains(self) -> list[str]:
        """Every chain with an entry, a head or a checkpoint: a chain whose head row was deleted is still walked."""
        with self.store._guard(), self.store.engine.connect() as conn:
            names = set(conn.execute(select(_E.c.chain).distinct()).scalars())
            names |= set(conn.execute(select(_H.c.chain)).scalars())
            names |= set(conn.execute(select(_C.c.chain).distinct()).scalars())
        return sorted(names)

    def entries(self, chain: str, since: str | None = None, until: str | None = None) -> Iterator[Entry]:
        """A chain's entries in sequence order (``since``/``until``: ISO times, as the chain writes them)."""
        q = select(_E).where(_E.c.chain == chain).order_by(_E.c.seq)
        if since:
            q = q.where(_E.c.at >= since)
        if until:
            q = q.where(_E.c.at < until)
        with self.store._guard(), self.store.engine.connect() as conn:
            for r in conn.execute(q.execution_options(yield_per=5000)):
                yield Entry(r.chain, int(r.seq), r.at, r.prev, r.record, r.hash)

    def checkpoints(self, chain: str) -> list[Checkpoint]:
        with self.store._guard(), self.store.engine.connect() as conn:
            return [Checkpoint(r.chain, int(r.seq), r.hash, r.at, r.kid, r.signature)
                    for r in conn.execute(select(_C).where(_C.c.chain == chain).order_by(_C.c.seq))]
