"""The rule book of reviews: who may vote, and what votes add up to (wardgate.reviews.model)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.reviews.model import (
    APPROVED,
    DENIED,
    PENDING,
    ReviewSpec,
    Vote,
    VoteRefused,
    check_vote,
    outcome,
)

ONE = ReviewSpec(("sre",))
TWO = ReviewSpec(("sre", "dba"), min_approvals=2)
EACH = ReviewSpec(("sre", "dba"), min_approvals=2, all_groups=True)


def ok(who: str, *groups: str) -> Vote:
    return Vote(who, groups, True)


def test_who_may_vote() -> None:
    check_vote(ONE, PENDING, "ann", "bob", ["sre"], [])
    with pytest.raises(VoteRefused, match="self-approval is refused"):
        check_vote(ONE, PENDING, "ann", "ann", ["sre"], [])  # even in an approver group
    with pytest.raises(VoteRefused, match="not in an approver group"):
        check_vote(ONE, PENDING, "ann", "bob", ["eng"], [])
    with pytest.raises(VoteRefused, match="already voted"):
        check_vote(TWO, PENDING, "ann", "bob", ["sre"], [ok("bob", "sre")])
    for status in ("approved", "denied", "expired", "withdrawn", "executed"):
        with pytest.raises(VoteRefused, match=f"is {status}, not pending"):
            check_vote(ONE, status, "ann", "bob", ["sre"], [])


def test_what_votes_decide() -> None:
    assert outcome(ONE, []) == PENDING
    assert outcome(ONE, [ok("bob", "sre")]) == APPROVED
    assert outcome(TWO, [ok("bob", "sre")]) == PENDING
    assert outcome(TWO, [ok("bob", "sre"), ok("cy", "sre")]) == APPROVED  # any two of the groups
    assert outcome(TWO, [ok("bob", "sre"), Vote("cy", ("dba",), False, "no")]) == DENIED  # one no is no
    # all_groups: each group needs an approver of its own
    assert outcome(EACH, [ok("bob", "sre"), ok("cy", "sre")]) == PENDING
    assert outcome(EACH, [ok("bob", "sre", "dba"), ok("cy", "sre")]) == APPROVED  # bob for dba, cy for sre
    assert outcome(EACH, [ok("bob", "sre", "dba")]) == PENDING  # one person is not two groups
    three = ReviewSpec(("a", "b", "c"), min_approvals=3, all_groups=True)
    assert outcome(three, [ok("x", "a", "b"), ok("y", "a", "b"), ok("z", "a")]) == PENDING  # nobody for c
    assert outcome(three, [ok("x", "a", "b"), ok("y", "b", "c"), ok("z", "a")]) == APPROVED


def test_describe() -> None:
    assert ONE.describe() == "1 approval from: sre"
    assert EACH.describe() == "2 approvals, one from each of: sre, dba"


GROUPS = ("a", "b", "c")


@given(st.lists(st.tuples(st.sampled_from(["p", "q", "r", "s"]),
                          st.sets(st.sampled_from(GROUPS), min_size=1)), max_size=4, unique_by=lambda t: t[0]),
       st.sets(st.sampled_from(GROUPS), min_size=1))
def test_all_groups_is_a_matching(voters: list[tuple[str, set[str]]], needed: set[str]) -> None:
    """Approved exactly when some assignment gives each needed group a distinct approver in it (brute force)."""
    groups = tuple(sorted(needed))
    spec = ReviewSpec(groups, min_approvals=len(groups), all_groups=True)
    votes = [Vote(who, tuple(sorted(gs)), True) for who, gs in voters]
    brute = any(all(g in v.groups for g, v in zip(groups, pick, strict=True))
                for pick in itertools.permutations(votes, len(groups)))
    assert (outcome(spec, votes) == APPROVED) == brute


def test_windows_and_votes_outside_them() -> None:
    from datetime import UTC, datetime, time

    from wardgate.reviews.model import Window

    night = Window(("sat",), time(22, 0), time(2, 0), "UTC")  # Saturday 22:00 to Sunday 02:00
    sat = datetime(2026, 11, 28, tzinfo=UTC)  # a Saturday
    assert night.contains(sat.replace(hour=23))
    assert night.contains(sat.replace(day=29, hour=1, minute=59))  # the Saturday window, past midnight
    assert not night.contains(sat.replace(day=29, hour=2))
    assert not night.contains(sat.replace(day=29, hour=23))  # Sunday's own night is not in it
    assert not night.contains(sat.replace(hour=21, minute=59))
    berlin = Window(("sat", "sun"), time(2, 0), time(4, 0), "Europe/Berlin")
    assert berlin.contains(sat.replace(hour=1, minute=30))  # 02:30 in Berlin (UTC+1 in November)
    assert not berlin.contains(sat.replace(hour=3, minute=30))
    spec = ReviewSpec(("sre",), window=berlin)
    assert spec.describe() == "1 approval from: sre, within sat,sun 02:00-04:00 Europe/Berlin"
    with pytest.raises(VoteRefused, match="only within its window"):
        check_vote(spec, PENDING, "ann", "bob", ["sre"], [], True, sat.replace(hour=12))
    check_vote(spec, PENDING, "ann", "bob", ["sre"], [], False, sat.replace(hour=12))  # a denial counts any time
    check_vote(spec, PENDING, "ann", "bob", ["sre"], [], True, sat.replace(hour=1, minute=30))
