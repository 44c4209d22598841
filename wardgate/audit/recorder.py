"""Audit records: journaled before the client is answered, then written to the store in batches by one thread.

The front-end stages the records a batch of server answers produces, calls ``commit`` once, and only then
forwards the answers: a statement is never acknowledged before its record is in the journal. The store is
filled from memory by a writer thread in large transactions, which keeps the store's cost per record small and
off the client's latency. If the journal cannot be written the session is ended; if the store cannot be written
the writer retries the same batch (nothing is lost or reordered) and ``accepting`` turns false, so the pipeline
refuses new sessions and statements until it recovers (fail closed).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque

from ..store import Store, StoreError
from ..store.db import Write
from .journal import Journal, encode

log = logging.getLogger("wardgate.audit")


class AuditUnavailable(Exception):
    """A record could not be made durable; the work that needed it must be refused or ended."""


class Recorder:
    def __init__(self, store: Store, journal: Journal | None = None, *, max_pending: int = 200_000,
                 batch_size: int = 2000, linger: float = 0.01) -> None:
        self.store = store
        self.journal = journal
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.linger = linger
        self._lock = threading.Lock()
        self._staged: list[Write] = []
        self._queue: deque[tuple[list[Write], int]] = deque()  # groups of writes, journal offset after each
        self._queued = 0
        self._cond = threading.Condition()
        self._submitted = 0
        self._written = 0
        self._store_ok = True
        self._journal_ok = True
        self._last_error = ""
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wardgate-audit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def accepting(self) -> bool:
        """May new work start? False while the store or journal fails, or too much waits for the store."""
        return self._store_ok and self._journal_ok and self._queued < self.max_pending

    @property
    def healthy(self) -> bool:
        return self.accepting

    @property
    def last_error(self) -> str:
        return self._last_error or f"{self._queued} audit records are waiting for the store"

    def record(self, *writes: Write) -> None:
        """Stage writes; they become durable at the next ``commit``. Safe from any thread."""
        with self._lock:
            self._staged.extend(writes)

    @property
    def staged(self) -> bool:
        return bool(self._staged)

    def commit(self) -> None:
        """Journal everything staged and hand it to the writer. Raises ``AuditUnavailable`` if not durable."""
        with self._lock:
            staged = self._staged
            if not staged:
                return
            self._staged = []
            offset = 0
            error = None
            if self.journal is not None:
                try:
                    offset = self.journal.append(encode(staged))
                    self._journal_ok = True
                except OSError as exc:
                    self._journal_ok = False
                    error = f"audit journal {self.journal.path} cannot be written: {exc.strerror or exc}"
                    self._last_error = error
                    log.error("%s", error)
            with self._cond:
                # Even unjournaled records go on to the store: they may still get there.
                self._queue.append((staged, offset))
                self._queued += len(staged)
                self._submitted += len(staged)
                if self._queued == len(staged) or self._queued >= self.batch_size:
                    self._cond.notify()
        if error is not None:
            raise AuditUnavailable(error)

    def flush(self, timeout: float = 10.0) -> bool:
        """Commit what is staged and wait until everything so far is in the store; False on timeout."""
        with contextlib.suppress(AuditUnavailable):  # what is not journaled still goes to the store
            self.commit()
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._cond.notify()
            while self._written < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 10.0) -> bool:
        """Flush, stop the writer; remove the journal only when all of it reached the store."""
        flushed = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
        if self.journal is not None:
            self.journal.close(remove=flushed)
            if flushed:
                try:
                    self.store.forget_journal(self.journal.name)
                except StoreError as exc:
                    log.warning("could not clear the journal offset of %s: %s", self.journal.name, exc)
        return flushed

    def _take_batch(self) -> tuple[list[Write], int] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            if self._queued < self.batch_size and not self._stopping:
                self._cond.wait(self.linger)  # let a batch gather: one transaction for many records
            batch: list[Write] = []
            offset = 0
            while self._queue and len(batch) < self.batch_size:
                writes, offset = self._queue.popleft()
                batch.extend(writes)
            return batch, offset

    def _run(self) -> None:
        backoff = 0.2
        while True:
            taken = self._take_batch()
            if taken is None:
                return
            batch, offset = taken
            journal = (self.journal.name, offset) if self.journal is not None and offset else None
            while True:
                try:
                    self.store.write(batch, journal)
                except StoreError as exc:
                    self._last_error = f"audit store unavailable: {exc}"
                    if self._store_ok:
                        log.error("audit store write failed; refusing new work until it recovers: %s", exc)
                    self._store_ok = False
                    if self._stopping:
                        return
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if not self._store_ok:
                    log.warning("audit store writable again")
                self._store_ok = True
                self._last_error = ""
                backoff = 0.2
                break
            with self._cond:
                self._written += len(batch)
                self._queued -= len(batch)
                self._cond.notify_all()
