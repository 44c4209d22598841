"""The tracker pairs every server answer with the statement it belongs to, as the server itself does."""

from __future__ import annotations

import gc
import weakref
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.protocols.postgres.tracker import ExchangeTracker


def test_simple_query_with_error_skips_the_rest() -> None:
    t: ExchangeTracker[str] = ExchangeTracker()
    t.query(["a", "b", "c"])
    assert t.complete() == "a"
    assert t.error() == ("b", ["c"])
    assert t.ready() == []


def test_pipelined_batches_stay_separate() -> None:
    t: ExchangeTracker[str] = ExchangeTracker()
    # Parse(bad) Sync | Parse Bind Execute(x) Sync: the error belongs to the first batch only.
    t.parse("", "bad")
    t.sync()
    t.parse("", "select 1")
    t.bind("", "", 1)
    t.add("x")
    t.sync()
    assert t.error() == (None, [])
    assert t.ready() == []
    assert t.complete() == "x"
    assert t.ready() == []


def test_error_mid_batch_skips_until_sync() -> None:
    t: ExchangeTracker[str] = ExchangeTracker()
    for h in ("e1", "e2", "e3"):
        t.add(h)
    t.sync()
    t.add("next")
    t.sync()
    assert t.complete() == "e1"
    assert t.error() == ("e2", ["e3"])
    assert t.ready() == []
    assert t.complete() == "next"


def test_statements_and_portals() -> None:
    t: ExchangeTracker[str] = ExchangeTracker()
    t.parse("s", "select $1")
    t.bind("p", "s", 1)
    assert t.portal("p") == ("select $1", 1)
    t.close("P", "p")
    assert t.portal("p") == (None, 0)
    t.parse("", "select 2")
    t.bind("", "", 0)
    t.query([])  # a simple query destroys the unnamed statement and portal
    assert t.portal("") == (None, 0)
    assert t.statements == {"s": "select $1"}


def test_pending_drains_everything() -> None:
    t: ExchangeTracker[str] = ExchangeTracker()
    t.add("a")
    t.sync()
    t.add("b")
    assert t.pending() == ["a", "b"]
    assert t.pending() == []


class _Model:
    """The tracker as it was written with deques (before 2026-12-07): the specification the compiled queue keeps."""

    def __init__(self) -> None:
        self.batches: deque[deque[str]] = deque([deque()])

    def add(self, h: str) -> None:
        self.batches[-1].append(h)

    def sync(self) -> None:
        self.batches.append(deque())

    def query(self, hs: list[str]) -> None:
        self.batches[-1].extend(hs)
        self.sync()

    def head(self) -> str | None:
        return self.batches[0][0] if self.batches[0] else None

    def unsync(self, n: int) -> None:
        for _ in range(n):
            if len(self.batches) > 1:
                nxt = self.batches[1]
                del self.batches[1]
                self.batches[0].extend(nxt)

    def complete(self) -> str | None:
        return self.batches[0].popleft() if self.batches[0] else None

    def error(self) -> tuple[str | None, list[str]]:
        failed = self.batches[0].popleft() if self.batches[0] else None
        skipped = list(self.batches[0])
        self.batches[0].clear()
        return failed, skipped

    def ready(self) -> list[str]:
        if len(self.batches) > 1:
            return list(self.batches.popleft())
        left = list(self.batches[0])
        self.batches[0].clear()
        return left

    def pending(self) -> list[str]:
        out = [h for b in self.batches for h in b]
        self.batches = deque([deque()])
        return out


OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 9)), st.tuples(st.just("sync"), st.none()),
    st.tuples(st.just("query"), st.integers(0, 3)), st.tuples(st.just("head"), st.none()),
    st.tuples(st.just("unsync"), st.integers(0, 3)), st.tuples(st.just("complete"), st.none()),
    st.tuples(st.just("error"), st.none()), st.tuples(st.just("ready"), st.none()),
    st.tuples(st.just("pending"), st.none()),
    st.tuples(st.just("many"), st.integers(60, 200)),  # past the queue's compaction threshold
), max_size=120)


@settings(max_examples=500, deadline=None)
@given(OPS)
def test_the_same_answers_as_the_deque_model(ops: list[tuple[str, int | None]]) -> None:
    t: ExchangeTracker[str] = ExchangeTracker()
    m = _Model()
    made = 0
    for op, arg in ops:
        if op == "add":
            made += 1
            t.add(f"h{made}")
            m.add(f"h{made}")
        elif op == "query":
            assert arg is not None
            hs = [f"q{made + i}" for i in range(arg)]
            made += arg
            t.query(hs)
            m.query(hs)
        elif op == "many":  # a long pipeline: many statements, each completed
            assert arg is not None
            for i in range(arg):
                t.add(f"m{made + i}")
                m.add(f"m{made + i}")
            made += arg
            for _ in range(arg // 2):
                assert t.complete() == m.complete()
        elif op in ("sync",):
            t.sync()
            m.sync()
        elif op == "unsync":
            assert arg is not None
            t.unsync(arg)
            m.unsync(arg)
        else:
            assert getattr(t, op)() == getattr(m, op)(), op
        assert t.head() == m.head()
    assert t.pending() == m.pending()


def test_answered_handles_are_not_held() -> None:
    """A long pipeline answered as it goes: the tracker keeps no reference to what was answered."""

    class Handle:
        pass

    t: ExchangeTracker[Handle] = ExchangeTracker()
    refs = []
    for _ in range(1000):
        h = Handle()
        refs.append(weakref.ref(h))
        t.add(h)
        del h
    for _ in range(999):
        t.complete()
    gc.collect()
    assert [i for i, r in enumerate(refs) if r() is not None] == [999]
    assert t.pending() == [refs[999]()]
