"""Keeps the gateway's view of a session's protocol state in step with the server's.

The client may pipeline many messages; the server answers them in order, skips to the next Sync after an
error, and ends every Sync or simple Query with ReadyForQuery. The tracker mirrors exactly that, so each answer
is paired with the statement it belongs to, whatever the client pipelines. Handles are opaque to it.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar, cast

H = TypeVar("H")
T = TypeVar("T")

#: A queue's consumed head is cut off once it is this long and at least half the list: long pipelines stay O(1)
#: a message, and what was answered is not held.
_COMPACT_AT: Final = 64


class _Queue(Generic[T]):
    """First in, first out: a list read from ``start``. Why not ``collections.deque``: from compiled code every
    deque operation is a method call by name (~220 instructions; the tracker made 10 a select-only transaction),
    where these are native list operations. An answered item is dropped from the list at once (its slot set to
    None), so a record is not kept alive by the queue."""

    __slots__ = ("items", "start")

    def __init__(self) -> None:
        self.items: list[T | None] = []
        self.start = 0

    def size(self) -> int:
        return len(self.items) - self.start

    def first(self) -> T | None:
        return self.items[self.start] if self.start < len(self.items) else None

    def last(self) -> T | None:
        return self.items[-1] if self.start < len(self.items) else None

    def append(self, item: T) -> None:
        self.items.append(item)

    def extend(self, items: list[T]) -> None:
        self.items.extend(items)

    def popleft(self) -> T | None:
        items = self.items
        i = self.start
        if i >= len(items):
            return None
        item = items[i]
        items[i] = None
        i += 1
        if i >= _COMPACT_AT and 2 * i >= len(items):  # an emptied queue too, once every _COMPACT_AT items
            del items[:i]
            i = 0
        self.start = i
        return item

    def drain(self) -> list[T]:
        """Everything left, oldest first; the queue is then empty."""
        out = self.items[self.start :]  # no None among them: only answered slots are set to None
        self.items = []  # list.clear() is a call by name from compiled code; a new list is not
        self.start = 0
        return cast("list[T]", out)

    def pop_second(self) -> T | None:
        """Remove and return the item after the first (None when there is none)."""
        at = self.start + 1
        if at >= len(self.items):
            return None
        item = self.items[at]
        del self.items[at]
        return item


class ExchangeTracker(Generic[H]):
    __slots__ = ("_batches", "portals", "statements")

    def __init__(self) -> None:
        self.statements: dict[str, str] = {}
        # A portal's statement text (None when its statement was not prepared through the protocol, e.g. with
        # SQL PREPARE: the gateway then does not know the text from the protocol alone) and parameter count.
        self.portals: dict[str, tuple[str | None, int]] = {}
        # Batches of statements awaiting answers, oldest first; the last one is still open (no Sync yet). Never
        # empty: there is always an open batch.
        self._batches: _Queue[_Queue[H]] = _Queue()
        self._batches.append(_Queue())

    # --- what the client sends --------------------------------------------------------------------------------

    def parse(self, name: str, text: str) -> None:
        self.statements[name] = text

    def bind(self, portal: str, statement: str, param_count: int) -> None:
        self.portals[portal] = (self.statements.get(statement), param_count)

    def portal(self, name: str) -> tuple[str | None, int]:
        return self.portals.get(name, (None, 0))

    def close(self, kind: str, name: str) -> None:
        (self.statements if kind == "S" else self.portals).pop(name, None)

    def _open(self) -> _Queue[H]:
        batch = self._batches.last()
        assert batch is not None
        return batch

    def _oldest(self) -> _Queue[H]:
        batch = self._batches.first()
        assert batch is not None
        return batch

    def add(self, handle: H) -> None:
        self._open().append(handle)

    def sync(self) -> None:
        self._batches.append(_Queue())

    def query(self, handles: list[H]) -> None:
        """A simple Query: its statements, then its own ReadyForQuery. It drops the unnamed statement/portal."""
        self.statements.pop("", None)
        self.portals.pop("", None)
        self._open().extend(handles)
        self.sync()

    # --- what the server answers ------------------------------------------------------------------------------

    def head(self) -> H | None:
        return self._oldest().first()

    def unsync(self, n: int) -> None:
        """The server ignored ``n`` Syncs (sent while it was in copy-in mode): forget those batch boundaries."""
        for _ in range(n):
            nxt = self._batches.pop_second()
            if nxt is not None:
                self._oldest().extend(nxt.drain())

    def complete(self) -> H | None:
        """CommandComplete, EmptyQueryResponse, PortalSuspended or FunctionCallResponse: the head finished."""
        return self._oldest().popleft()

    def error(self) -> tuple[H | None, list[H]]:
        """ErrorResponse: the head failed and the server will skip the rest of its batch."""
        head = self._oldest()
        failed = head.popleft()
        return failed, head.drain()

    def ready(self) -> list[H]:
        """ReadyForQuery: the oldest batch is over; whatever it still held never ran."""
        if self._batches.size() > 1:
            oldest = self._batches.popleft()
            assert oldest is not None
            return oldest.drain()
        return self._oldest().drain()

    def pending(self) -> list[H]:
        """Everything still awaiting an answer (used when a connection is lost)."""
        out = [h for batch in self._batches.drain() for h in batch.drain()]
        self._batches.append(_Queue())
        return out
