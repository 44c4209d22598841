"""Signed checkpoints of the audit chains: what makes a rewritten store detectable.

The key is a file (``audit.key_file``, default ``DATA_DIR/audit-signing.key``, 0600), never kept in the store: a
checkpoint proves the chain up to it only to someone holding the public key from elsewhere (``wardgate audit
public-key``), since whoever can rewrite the store could also re-sign with a key the store held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..identity.keys import SigningKey, key_file, public_pem
from ..store import Store, StoreError
from ..store.auditlog import AuditLog
from .chain import Entry, iso, sign_checkpoint

log = logging.getLogger("wardgate.audit")


def audit_key(path: Path, store: Store | None = None) -> SigningKey:
    """The checkpoint key (created on first use), its public half published to ``store``."""
    key = key_file(path)
    if store is not None:
        AuditLog(store).publish_key(key.kid, public_pem(key))
    return key


class Checkpointer:
    """Signs a chain's head every ``every`` entries, or after ``interval`` seconds when it has moved."""

    def __init__(self, store: Store, key: SigningKey, every: int, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = AuditLog(store)
        self.key = key
        self.every = every
        self.interval = interval
        self.clock = clock
        self._head: Entry | None = None
        self._signed: dict[str, int] = {}
        self._last = clock()

    def moved(self, head: Entry | None) -> None:
        """A write moved a chain's head (None: nothing was chained); sign it when due."""
        if head is not None:
            self._head = head
        h = self._head
        if h is None or h.seq <= self._signed.get(h.chain, 0):
            return
        if h.seq - self._signed.get(h.chain, 0) >= self.every or self.clock() - self._last >= self.interval:
            self.sign()

    def sign(self) -> None:
        """Sign the current head now (also at shutdown). A store error is logged; the next write retries."""
        h = self._head
        if h is None or h.seq <= self._signed.get(h.chain, 0):
            return
        cp = sign_checkpoint(self.key.private, self.key.kid, h.chain, h.seq, h.hash, iso(time.time()))
        try:
            self.log.add_checkpoint(cp)
        except StoreError as exc:
            log.warning("cannot store the audit checkpoint of %s #%d: %s", h.chain, h.seq, exc)
            return
        self._signed[h.chain] = h.seq
        self._last = self.clock()


def sign_head(store: Store, key: SigningKey, chain: str) -> bool:
    """Sign a chain's current head if no checkpoint covers it yet (the CLI's chain, at a gateway's start, for
    commands run by users who cannot read the key). Returns whether a checkpoint was made."""
    log_ = AuditLog(store)
    head = log_.heads().get(chain)
    if head is None or int(head["seq"]) == 0:
        return False
    signed = max((c.seq for c in log_.checkpoints(chain)), default=0)
    if int(head["seq"]) <= signed:
        return False
    return log_.add_checkpoint(sign_checkpoint(key.private, key.kid, chain, int(head["seq"]), head["hash"],
                                               iso(time.time())))
