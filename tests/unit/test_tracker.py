"""The tracker pairs every server answer with the statement it belongs to, as the server itself does."""

from __future__ import annotations

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
