"""A single writer thread that applies audit writes to the store in order, in batches.

The event loop never waits on the database: it hands a write over and goes on. If the store cannot be written
the recorder says so (``healthy`` is false) and keeps retrying the same batch, so nothing is lost or reordered;
the pipeline refuses new work meanwhile (fail closed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from ..store import Store, StoreError
from ..store.db import Write

log = logging.getLogger("wardgate.audit")


class AuditUnavailable(Exception):
    """The audit store cannot take more records right now; the work that needed recording must be refused."""


class Recorder:
    def __init__(self, store: Store, *, max_pending: int = 200_000, batch_size: int = 1000) -> None:
        self.store = store
        self.max_pending = max_pending
        self.batch_size = batch_size
        self._queue: deque[Write] = deque()
        self._cond = threading.Condition()
        self._submitted = 0
        self._written = 0
        self._healthy = True
        self._last_error = ""
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wardgate-audit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def last_error(self) -> str:
        return self._last_error

    def submit(self, *writes: Write) -> None:
        with self._cond:
            if self._stopping:
                raise AuditUnavailable("the gateway is shutting down")
            if len(self._queue) + len(writes) > self.max_pending:
                raise AuditUnavailable(f"{len(self._queue)} audit records are waiting for the store")
            self._queue.extend(writes)
            self._submitted += len(writes)
            self._cond.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            while self._written < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 10.0) -> bool:
        flushed = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
        return flushed

    def _run(self) -> None:
        backoff = 0.2
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue and self._stopping:
                    return
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            while True:
                try:
                    self.store.write(batch)
                except StoreError as exc:
                    self._last_error = str(exc)
                    if self._healthy:
                        log.error("audit store write failed; refusing new statements until it recovers: %s", exc)
                    self._healthy = False
                    with self._cond:
                        if self._stopping:
                            return
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if not self._healthy:
                    log.warning("audit store writable again")
                self._healthy = True
                backoff = 0.2
                break
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()
