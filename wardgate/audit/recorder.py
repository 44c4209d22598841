"""Audit records: journaled before the client is answered; shipped to the store by a process of its own.

The front-end stages the records a batch of server answers produces, calls ``commit`` once, and only then
forwards the answers: a statement is never acknowledged before its record is in the journal. The shipper
process (``audit/shipper.py``) moves the journal into the store. A monitor thread watches how far the store has
got: while the store is unreachable, or too far behind, ``accepting`` is false and the pipeline refuses new
sessions and statements (fail closed); when the journal itself cannot be written, the session that needed it is
ended.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..store import Store, StoreError
from ..store.db import Write
from .journal import Journal, Staged, encode_staged
from .shipper import STORE_ENV

log = logging.getLogger("wardgate.audit")


class AuditUnavailable(Exception):
    """A record could not be made durable; the work that needed it must be refused or ended."""


class Recorder:
    def __init__(
        self,
        store: Store,
        journal: Journal,
        *,
        max_lag_bytes: int = 256 << 20,
        stall_seconds: float = 5.0,
        check_interval: float = 0.25,
        shipper_args: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.shipper_args = list(shipper_args)  # checkpoint key and cadence (audit/shipper.py)
        self.journal = journal
        self.max_lag_bytes = max_lag_bytes
        self.stall_seconds = stall_seconds
        self.check_interval = check_interval
        # Staging takes no lock: records are appended to this one list, never replaced, and a commit takes the
        # ones it found by a slice and a slice deletion (each one step under the GIL), so a record staged by
        # another thread meanwhile lands after them and waits for the next commit. Commits exclude each other
        # (the journal's offset), through the lock's methods bound once: compiled, ``with lock`` looks up
        # ``__enter__`` and ``__exit__`` by name, ~1,100 instructions a use, twice a statement.
        lock = threading.Lock()
        self._acquire: Callable[[], bool] = lock.acquire
        self._release: Callable[[], None] = lock.release
        self._staged: list[Staged] = []
        self._shipped = 0
        self._store_ok = True
        self._journal_ok = True
        self._last_error = ""
        self._stop = threading.Event()
        self._shipper: subprocess.Popen[bytes] | None = None
        self._monitor = threading.Thread(target=self._watch, name="wardgate-audit-monitor", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._start_shipper()
        self._monitor.start()

    def _start_shipper(self) -> None:
        env = {**os.environ, STORE_ENV: self.store.url}
        self._shipper = subprocess.Popen(
            [sys.executable, "-m", "wardgate.audit.shipper", "--journal", str(self.journal.path),
             "--parent", str(os.getpid()), *self.shipper_args], env=env
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Commit, let the shipper finish, stop it; remove the journal only when all of it is in the store."""
        try:
            self.commit()
        except AuditUnavailable as exc:
            log.error("%s", exc)
        flushed = self.flush(timeout)
        self._stop.set()
        if self._shipper is not None:
            self._shipper.terminate()
            try:
                self._shipper.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._shipper.kill()
                self._shipper.wait()
        self._monitor.join(timeout=2)
        self.journal.close(remove=flushed)
        if flushed:
            try:
                self.store.forget_journal(self.journal.name)
            except StoreError as exc:
                log.warning("could not clear the journal offset of %s: %s", self.journal.name, exc)
        return flushed

    # --- the hot path -------------------------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """May new work start? False while the journal or store fails, or the store is too far behind."""
        return self._store_ok and self._journal_ok

    @property
    def last_error(self) -> str:
        return self._last_error

    def record(self, *writes: Write) -> None:
        """Stage writes; they become durable at the next ``commit``. Safe from any thread (one ``extend`` of a
        list built first: the writes stay together)."""
        self._staged.extend([(w.table, w.key, w.values) for w in writes])

    def record_insert(self, table: str, values: tuple[Any, ...]) -> None:
        """Stage one insert given in ``INSERT_COLUMNS[table]`` order: ``record`` for the hot path, which makes
        no Write object (its generated ``__init__`` is interpreted Python, ~4,000 instructions)."""
        self._staged.append((table, None, values))

    @property
    def staged(self) -> bool:
        return bool(self._staged)

    def commit(self) -> None:
        """Journal everything staged. Raises ``AuditUnavailable`` when it could not be made durable."""
        staged = self._staged
        if not staged:
            return
        self._acquire()
        try:
            n = len(staged)
            batch = staged[:n]
            del staged[:n]
            if not batch:
                return  # another thread's commit took them
            try:
                self.journal.append(encode_staged(batch))
            except OSError as exc:
                self._journal_ok = False
                self._last_error = f"the audit journal {self.journal.path} cannot be written: {exc.strerror or exc}"
                log.error("%s; %d records are lost", self._last_error, len(batch))
                raise AuditUnavailable(self._last_error) from None
            self._journal_ok = True
        finally:
            self._release()

    # --- watching the store --------------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the store holds everything journaled so far; False on timeout."""
        target = self.journal.offset
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.store.journal_offset(self.journal.name) >= target:
                    return True
            except StoreError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def _watch(self) -> None:
        progress_at = time.monotonic()
        while not self._stop.wait(self.check_interval):
            if self._shipper is not None and self._shipper.poll() is not None and not self._stop.is_set():
                log.error("the audit shipper exited (%s); restarting it", self._shipper.returncode)
                self._start_shipper()
            try:
                shipped = self.store.journal_offset(self.journal.name)
            except StoreError as exc:
                self._fail(f"the audit store is unreachable: {exc}")
                continue
            now = time.monotonic()
            if shipped > self._shipped or shipped >= self.journal.offset:
                progress_at = now
            self._shipped = shipped
            lag = self.journal.offset - shipped
            if lag > self.max_lag_bytes:
                self._fail(f"the audit store is {lag >> 20} MiB of records behind")
            elif lag and now - progress_at > self.stall_seconds:
                self._fail(f"the audit store has taken no records for {now - progress_at:.0f}s")
            elif not self._store_ok:
                log.warning("the audit store is keeping up again")
                self._store_ok = True
                self._last_error = ""

    def _fail(self, reason: str) -> None:
        if self._store_ok:
            log.error("%s; refusing new sessions and statements until it recovers", reason)
        self._store_ok = False
        self._last_error = reason
