"""One sink's bounded queue and its delivery thread.

The shipper must never wait for a receiver: it hands each sink the records of a committed batch and goes on. A
sink queues at most ``max_backlog`` records and drops (and counts) what does not fit; its own thread takes
batches off the queue and gives them to its transport (file, syslog, webhook), retrying a failed batch with
exponential backoff. A transport that gives up on a batch (a webhook after its retries) has it counted as failed.
Nothing here knows what a record means or how it travels.

Counts: ``delivered`` (the transport took them), ``dropped`` (the queue was full), ``failed`` (retries spent),
``abandoned`` (still queued or in flight when the shipper stopped and the drain time ran out). Every record offered
ends in exactly one of them (or is still on its way).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .records import SinkRecord

log = logging.getLogger("wardgate.audit.sinks")

MAX_BACKOFF = 60.0
T = TypeVar("T")


class SinkError(Exception):
    """A delivery that did not go (whole or part). ``sent`` records at the batch's head did go. The message is safe
    to log and to record: transports never put a secret or a secret-bearing URL in it."""

    def __init__(self, message: str, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


class Transport(Protocol):
    """How records reach one receiver. ``send`` is called from the sink's thread only."""

    batch_size: int  # the most records one send gets
    linger: float  # how long to wait for a fuller batch once a record is queued (0: send what is there)
    retries: int | None  # failed attempts at a batch before it is given up; None: retry until stopped
    backoff: float  # the first retry's delay; it doubles up to MAX_BACKOFF

    def send(self, batch: Sequence[SinkRecord]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Counts:
    delivered: int = 0
    dropped: int = 0
    failed: int = 0
    abandoned: int = 0

    @property
    def lost(self) -> int:
        return self.dropped + self.failed + self.abandoned


class Backlog(Generic[T]):
    """A bounded FIFO shared by one producer (the shipper) and one consumer (the sink's thread).

    ``put`` never blocks: what does not fit is dropped and counted (tail drop: the records already waiting keep
    their order, and the gap is one contiguous stretch). ``take`` waits for a first item, then up to ``linger`` for
    a full batch, unless the backlog is being drained.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._hurry = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, items: Sequence[T]) -> int:
        """Queue what fits; returns how many were dropped."""
        with self._cond:
            room = self.capacity - len(self._items)
            fits = items if len(items) <= room else items[: max(room, 0)]
            dropped = len(items) - len(fits)
            self.dropped += dropped
            if fits:
                self._items.extend(fits)
                self._cond.notify()
            return dropped

    def take(self, max_items: int, linger: float, wait: float) -> list[T]:
        """Up to ``max_items``: waits ``wait`` seconds for a first one (returns [] if none came), then until
        ``linger`` has passed or the batch is full."""
        with self._cond:
            if not self._items and not self._hurry:
                self._cond.wait(wait)
            if not self._items:
                return []
            if linger > 0 and len(self._items) < max_items:
                end = time.monotonic() + linger
                while len(self._items) < max_items and not self._hurry:
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            n = min(max_items, len(self._items))
            return [self._items.popleft() for _ in range(n)]

    def hurry(self) -> None:
        """Draining: no more lingering for fuller batches, and an empty take returns at once."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()

    def clear(self) -> int:
        """Empty the backlog; returns how many items it held."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n


class Sink:
    """A named transport with its backlog, its thread and its counts."""

    def __init__(self, name: str, kind: str, transport: Transport, max_backlog: int) -> None:
        self.name = name
        self.kind = kind
        self.transport = transport
        self.backlog: Backlog[SinkRecord] = Backlog(max_backlog)
        self.last_error = ""
        self._lock = threading.Lock()
        self._delivered = 0
        self._failed = 0
        self._abandoned = 0
        self._inflight = 0
        self._closed = False
        self._failing_since: float | None = None
        self._draining = threading.Event()
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wardgate-sink-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, records: Sequence[SinkRecord]) -> None:
        """Never blocks; what the backlog cannot take is dropped and counted."""
        if self._closed:
            return
        self.backlog.put(records)

    def counts(self) -> Counts:
        with self._lock:
            return Counts(self._delivered, self.backlog.dropped, self._failed, self._abandoned)

    # --- stopping: drain (bounded by the hub), then abandon what is left -----------------------------------------

    def drain(self) -> None:
        self._draining.set()
        self.backlog.hurry()

    def join(self, timeout: float) -> None:
        self._thread.join(max(timeout, 0.0))

    def abort(self) -> None:
        """Stop retrying and taking batches; a send in progress may still finish (its records count abandoned)."""
        self._abort.set()
        self.backlog.hurry()

    def abandon(self) -> int:
        """After ``abort``: what is still queued or in flight is counted abandoned. Returns that count."""
        self.abort()
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
            left = self.backlog.clear() + self._inflight
            self._abandoned += left
            self._inflight = 0
        try:
            self.transport.close()
        except Exception as exc:  # a receiver's socket that fails to close is no reason to fail the shipper
            log.debug("closing audit sink %s: %s", self.name, exc)
        return left

    # --- the thread ---------------------------------------------------------------------------------------------

    def _run(self) -> None:
        t = self.transport
        while not self._abort.is_set():
            batch = self.backlog.take(t.batch_size, 0.0 if self._draining.is_set() else t.linger, 0.5)
            if not batch:
                if self._draining.is_set():
                    return
                continue
            with self._lock:
                if self._closed:  # taken just as the hub abandoned the rest: these count with them
                    self._abandoned += len(batch)
                    return
                self._inflight = len(batch)
            self._deliver(batch)

    def _deliver(self, batch: list[SinkRecord]) -> None:
        t = self.transport
        attempts = 0
        delay = t.backoff
        while batch:
            try:
                t.send(batch)
                sent = len(batch)
                error: SinkError | None = None
            except SinkError as exc:
                sent, error = min(max(exc.sent, 0), len(batch)), exc
            except Exception as exc:  # a transport bug must not end the thread: the sink would fill and drop
                sent, error = 0, SinkError(f"unexpected {exc.__class__.__name__}")
            if sent:
                self._delivered_some(sent)
                batch = batch[sent:]
            if error is None:
                break
            attempts += 1
            self._failing(str(error))
            if t.retries is not None and attempts > t.retries:
                with self._lock:
                    if not self._closed:
                        self._failed += len(batch)
                        self._inflight = 0
                return
            if self._abort.wait(delay):
                return  # stopping: the hub counts the rest of the batch abandoned
            delay = min(delay * 2, MAX_BACKOFF)
        with self._lock:
            self._inflight = 0

    def _delivered_some(self, n: int) -> None:
        with self._lock:
            if self._closed:
                return  # already counted abandoned; counting it twice would be worse than under-reporting
            self._delivered += n
            self._inflight -= n
            recovered = self._failing_since
            self._failing_since = None
            lost = self.backlog.dropped + self._failed
        if recovered is not None:
            log.warning("audit sink %s (%s) delivers again after %.0fs failing; %d record(s) lost so far",
                        self.name, self.kind, time.monotonic() - recovered, lost)

    def _failing(self, error: str) -> None:
        self.last_error = error
        with self._lock:
            first = self._failing_since is None
            if first:
                self._failing_since = time.monotonic()
        if first:
            log.warning("audit sink %s (%s) is failing: %s; its records wait (at most %d) and are retried",
                        self.name, self.kind, error, self.backlog.capacity)
