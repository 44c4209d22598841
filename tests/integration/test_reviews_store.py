"""Review requests in the store, on SQLite and on PostgreSQL: votes cast at the same moment by different
reviewers all count (the request's row is taken first), a state change happens once (an expiry racing an
approval cannot both win), and the exact statement is kept while listings show only the redacted one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wardgate.reviews.model import ReviewSpec, VoteRefused
from wardgate.store import Store
from wardgate.store.reviews import Review, ReviewStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'reviews.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "pg_store_url")
    s = Store(url)
    s.migrate()
    yield s
    s.close()


def request(rs: ReviewStore, spec: ReviewSpec) -> Review:
    return rs.create(spec=spec, requester="ann", requester_groups=("eng",), connection="app", session_id=None,
                     gateway="test", rule="r", rule_reason="because", statement="DELETE FROM t WHERE id = 7",
                     redacted="DELETE FROM t WHERE id = $1", param_count=0, reason="INC-1")


def test_concurrent_votes_all_count(store: Store) -> None:
    rs = ReviewStore(store)
    n = 6
    r = request(rs, ReviewSpec(("sre",), min_approvals=n))
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def vote(i: int) -> None:
        barrier.wait()
        try:
            rs.vote(r.id, f"rev{i}", ("sre",), True, "")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    after = rs.get(r.id)
    assert after is not None and after.status == "approved" and len(after.votes) == n
    assert sorted(after.decided_by) == sorted(f"rev{i}" for i in range(n))


def test_one_state_change_wins(store: Store) -> None:
    rs = ReviewStore(store)
    r = request(rs, ReviewSpec(("sre",)))
    rs.vote(r.id, "bob", ("sre",), True, "ok")
    assert not rs.settle(r.id, "pending", "expired")  # approved first: the expiry loses
    assert rs.settle(r.id, "approved", "executed")
    assert not rs.settle(r.id, "approved", "executed")  # runs once
    with pytest.raises(VoteRefused, match="executed, not pending"):
        rs.vote(r.id, "cy", ("sre",), True, "")
    got = rs.get(r.id)
    assert got is not None and got.status == "executed" and got.executed_at is not None


def test_an_expired_request_takes_no_vote(store: Store) -> None:
    rs = ReviewStore(store)
    r = request(rs, ReviewSpec(("sre",), expires_after=0.01))
    import time

    time.sleep(0.05)
    with pytest.raises(VoteRefused, match="expired"):
        rs.vote(r.id, "bob", ("sre",), True, "")
    got = rs.get(r.id)
    assert got is not None and got.status == "expired" and got.votes == ()


def test_listings_show_the_redacted_statement_only(store: Store) -> None:
    rs = ReviewStore(store)
    r = request(rs, ReviewSpec(("sre",)))
    assert r.statement == "DELETE FROM t WHERE id = 7"  # kept to run exactly this
    public = r.public()
    assert public["statement"] == "DELETE FROM t WHERE id = $1"
    assert "7" not in str({k: v for k, v in public.items() if k not in ("created_at", "expires_at", "id")})
    assert rs.get(r.id[:6]) is not None  # a unique prefix finds it
    assert rs.get("zzzz") is None
    assert [x.id for x in rs.list("pending")] == [r.id]
