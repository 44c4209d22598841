"""Keeps the gateway's view of a session's protocol state in step with the server's.

The client may pipeline many messages; the server answers them in order, skips to the next Sync after an
error, and ends every Sync or simple Query with ReadyForQuery. The tracker mirrors exactly that, so each answer
is paired with the statement it belongs to, whatever the client pipelines. Handles are opaque to it.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

H = TypeVar("H")


class ExchangeTracker(Generic[H]):
    __slots__ = ("_batches", "portals", "statements")

    def __init__(self) -> None:
        self.statements: dict[str, str] = {}
        # A portal's statement text (None when its statement was not prepared through the protocol, e.g. with
        # SQL PREPARE: the gateway then does not know the text from the protocol alone) and parameter count.
        self.portals: dict[str, tuple[str | None, int]] = {}
        # Batches of statements awaiting answers, oldest first; the last one is still open (no Sync yet).
        self._batches: deque[deque[H]] = deque([deque()])

    # --- what the client sends --------------------------------------------------------------------------------

    def parse(self, name: str, text: str) -> None:
        self.statements[name] = text

    def bind(self, portal: str, statement: str, param_count: int) -> None:
        self.portals[portal] = (self.statements.get(statement), param_count)

    def portal(self, name: str) -> tuple[str | None, int]:
        return self.portals.get(name, (None, 0))

    def close(self, kind: str, name: str) -> None:
        (self.statements if kind == "S" else self.portals).pop(name, None)

    def add(self, handle: H) -> None:
        self._batches[-1].append(handle)

    def sync(self) -> None:
        self._batches.append(deque())

    def query(self, handles: list[H]) -> None:
        """A simple Query: its statements, then its own ReadyForQuery. It drops the unnamed statement/portal."""
        self.statements.pop("", None)
        self.portals.pop("", None)
        self._batches[-1].extend(handles)
        self.sync()

    # --- what the server answers ------------------------------------------------------------------------------

    def head(self) -> H | None:
        head = self._batches[0]
        return head[0] if head else None

    def unsync(self, n: int) -> None:
        """The server ignored ``n`` Syncs (sent while it was in copy-in mode): forget those batch boundaries."""
        for _ in range(n):
            if len(self._batches) > 1:
                nxt = self._batches[1]
                del self._batches[1]
                self._batches[0].extend(nxt)

    def complete(self) -> H | None:
        """CommandComplete, EmptyQueryResponse, PortalSuspended or FunctionCallResponse: the head finished."""
        head = self._batches[0]
        return head.popleft() if head else None

    def error(self) -> tuple[H | None, list[H]]:
        """ErrorResponse: the head failed and the server will skip the rest of its batch."""
        head = self._batches[0]
        failed = head.popleft() if head else None
        skipped = list(head)
        head.clear()
        return failed, skipped

    def ready(self) -> list[H]:
        """ReadyForQuery: the oldest batch is over; whatever it still held never ran."""
        if len(self._batches) > 1:
            return list(self._batches.popleft())
        left = list(self._batches[0])
        self._batches[0].clear()
        return left

    def pending(self) -> list[H]:
        """Everything still awaiting an answer (used when a connection is lost)."""
        out = [h for batch in self._batches for h in batch]
        self._batches = deque([deque()])
        return out
