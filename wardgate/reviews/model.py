"""The rule book of a review, pure: who may vote on a request, and what its votes add up to.

A request names the groups whose members may approve (``approvers``), how many approvals it needs
(``min_approvals``) and whether each group must be among them (``all_groups``). One denial denies: a reviewer who
says no is not outvoted. The requester never votes on their own request, whatever their groups; nobody votes
twice; with ``all_groups`` each group needs an approver of its own (one person in two groups covers one of them),
so "two groups must agree" cannot be met by one person.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

PENDING, APPROVED, DENIED, EXPIRED, WITHDRAWN, EXECUTED = (
    "pending", "approved", "denied", "expired", "withdrawn", "executed",
)
#: States no vote changes any more.
SETTLED = frozenset({DENIED, EXPIRED, WITHDRAWN, EXECUTED})


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """When approvals count (a maintenance window): on ``days``, from ``start`` to ``end`` in ``timezone``. An
    end before the start runs past midnight (22:00-02:00), and belongs to the day it starts on."""

    days: tuple[str, ...]
    start: time
    end: time
    timezone: str = "UTC"

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        t = local.time().replace(tzinfo=None)
        day = DAYS[local.weekday()]
        if self.start <= self.end:
            return day in self.days and self.start <= t < self.end
        if t >= self.start:
            return day in self.days
        yesterday = DAYS[(local.weekday() - 1) % 7]
        return t < self.end and yesterday in self.days

    def describe(self) -> str:
        days = ",".join(self.days) if len(self.days) < 7 else "daily"
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"


@dataclass(frozen=True, slots=True)
class ReviewSpec:
    approvers: tuple[str, ...]
    min_approvals: int = 1
    all_groups: bool = False
    expires_after: float = 900.0  # seconds
    notice_interval: float = 10.0  # seconds
    window: Window | None = None  # approvals count only within it; denials count at any time

    def describe(self) -> str:
        """Who can approve, in words, for notices and errors."""
        groups = ", ".join(self.approvers)
        n = self.min_approvals
        need = f"{n} approval{'s' if n > 1 else ''}"
        text = f"{need}, one from each of: {groups}" if self.all_groups and len(self.approvers) > 1 else \
            f"{need} from: {groups}"
        return text if self.window is None else f"{text}, within {self.window.describe()}"


@dataclass(frozen=True, slots=True)
class Vote:
    reviewer: str
    groups: tuple[str, ...]
    approve: bool
    reason: str = ""


class VoteRefused(Exception):
    """A vote that does not count; ``reason`` says why, fit for the reviewer and the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_vote(spec: ReviewSpec, status: str, requester: str, reviewer: str, groups: Iterable[str],
               votes: Sequence[Vote], approve: bool = True, at: datetime | None = None) -> None:
    """Raise VoteRefused unless ``reviewer`` (in ``groups``) may cast this vote at ``at`` on a request in
    ``status``."""
    if status != PENDING:
        raise VoteRefused(f"the request is {status}, not pending")
    if reviewer == requester:
        raise VoteRefused("self-approval is refused: the requester cannot review their own request")
    if not set(groups) & set(spec.approvers):
        raise VoteRefused(f'"{reviewer}" is not in an approver group of this request ({", ".join(spec.approvers)})')
    if any(v.reviewer == reviewer for v in votes):
        raise VoteRefused(f'"{reviewer}" has already voted on this request')
    if approve and spec.window is not None and at is not None and not spec.window.contains(at):
        raise VoteRefused(f"approvals of this request count only within its window ({spec.window.describe()})")


def outcome(spec: ReviewSpec, votes: Sequence[Vote]) -> str:
    """PENDING, APPROVED or DENIED: what these (valid) votes decide."""
    if any(not v.approve for v in votes):
        return DENIED
    approvals = [v for v in votes if v.approve]
    if len(approvals) < spec.min_approvals:
        return PENDING
    if spec.all_groups and not _each_group_has_its_own(spec.approvers, approvals):
        return PENDING
    return APPROVED


def _each_group_has_its_own(groups: Sequence[str], approvals: Sequence[Vote]) -> bool:
    """Is there a distinct approver for every group (a matching of groups to approvers)?"""
    taken: dict[str, str] = {}  # reviewer -> group

    def place(group: str, seen: set[str]) -> bool:
        for v in approvals:
            if group in v.groups and v.reviewer not in seen:
                seen.add(v.reviewer)
                if v.reviewer not in taken or place(taken[v.reviewer], seen):
                    taken[v.reviewer] = group
                    return True
        return False

    return all(place(g, set()) for g in groups)
