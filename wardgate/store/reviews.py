"""The review requests and votes in the store: every replica and the CLI read and change one state.

A vote is one transaction that first takes the request's row (an UPDATE, so concurrent voters on PostgreSQL
queue behind each other and SQLite's writer lock is held from the start), then reads the votes, checks the new
one against the rule book (``reviews.model``), adds it and settles the request if the votes now decide it. Two
approvers voting at once on a two-approval request therefore approve it, never leave it pending; a state change
is always a conditional UPDATE from the state it leaves, so an expiry and an approval racing cannot both win.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ..reviews.model import (
    APPROVED,
    DENIED,
    EXECUTED,
    EXPIRED,
    PENDING,
    ReviewSpec,
    Vote,
    VoteRefused,
    Window,
    check_vote,
    outcome,
)
from . import schema
from .db import Store, StoreError, _dated, now

_R = schema.reviews
_V = schema.review_votes


@dataclass(frozen=True, slots=True)
class Review:
    id: str
    status: str
    created_at: datetime
    expires_at: datetime
    requester: str
    requester_groups: tuple[str, ...]
    connection: str
    session_id: str | None
    gateway: str
    rule: str
    rule_reason: str
    statement: str
    redacted: str | None
    param_count: int
    reason: str | None
    spec: ReviewSpec
    decided_at: datetime | None
    decided_by: tuple[str, ...]
    decision_reason: str | None
    executed_at: datetime | None
    votes: tuple[Vote, ...] = ()
    kind: str = "statement"  # statement | access
    access: dict[str, Any] | None = None  # kind access: {"duration": seconds, "groups": [...]}

    def public(self) -> dict[str, Any]:
        """What listings and ``--json`` show: everything but the exact statement (its literals may be data)."""
        return {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "requester": self.requester,
            "requester_groups": list(self.requester_groups),
            "connection": self.connection,
            "session_id": self.session_id,
            "rule": self.rule,
            "rule_reason": self.rule_reason,
            "statement": self.redacted,
            "param_count": self.param_count,
            "reason": self.reason,
            "approvers": list(self.spec.approvers),
            "min_approvals": self.spec.min_approvals,
            "all_groups": self.spec.all_groups,
            "decided_at": self.decided_at,
            "decided_by": list(self.decided_by),
            "decision_reason": self.decision_reason,
            "executed_at": self.executed_at,
            "votes": [{"reviewer": v.reviewer, "approve": v.approve, "reason": v.reason, "groups": list(v.groups)}
                      for v in self.votes],
            "kind": self.kind,
            "access": self.access,
        }


class ReviewStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, *, spec: ReviewSpec, requester: str, requester_groups: tuple[str, ...], connection: str,
               session_id: str | None, gateway: str, rule: str, rule_reason: str, statement: str,
               redacted: str | None, param_count: int, reason: str | None, kind: str = "statement",
               access: dict[str, Any] | None = None) -> Review:
        created = now()
        row = {
            "created_at": created,
            "expires_at": created + timedelta(seconds=spec.expires_after),
            "status": PENDING,
            "requester": requester,
            "requester_groups": json.dumps(list(requester_groups)),
            "connection": connection,
            "session_id": session_id,
            "gateway": gateway,
            "rule": rule,
            "rule_reason": rule_reason,
            "statement": statement,
            "redacted": redacted,
            "param_count": param_count,
            "reason": reason,
            "kind": kind,
            "access": None if access is None else json.dumps(access),
            "spec": json.dumps({"approvers": list(spec.approvers), "min_approvals": spec.min_approvals,
                                "all_groups": spec.all_groups, "expires_after": spec.expires_after,
                                "notice_interval": spec.notice_interval, "window": _window_json(spec.window)}),
        }
        for _ in range(5):  # 40 random bits: a clash is rare, and a clash is only a retry
            rid = secrets.token_hex(5)
            try:
                with self.store._guard(), self.store.engine.begin() as conn:
                    conn.execute(insert(_R).values(id=rid, **row))
            except StoreError as exc:
                if isinstance(exc.__cause__, IntegrityError):
                    continue
                raise
            found = self.get(rid)
            assert found is not None
            return found
        raise StoreError("could not choose a free review id")

    def get(self, review_id: str) -> Review | None:
        """The request with this id, or the one whose id starts with it (None when none or several)."""
        with self.store._guard(), self.store.engine.connect() as conn:
            rows = list(conn.execute(select(_R).where(_R.c.id.startswith(review_id, autoescape=True)).limit(2)))
            if len(rows) != 1:
                return None
            votes = conn.execute(select(_V).where(_V.c.review_id == rows[0].id).order_by(_V.c.at))
            return _review(rows[0]._mapping, [_vote(v._mapping) for v in votes])

    def list(self, status: str | None = None, limit: int = 50) -> list[Review]:
        q = select(_R).order_by(_R.c.created_at.desc()).limit(limit)
        if status:
            q = q.where(_R.c.status == status)
        with self.store._guard(), self.store.engine.connect() as conn:
            return [_review(r._mapping, []) for r in conn.execute(q)]

    def find_approved(self, requester: str, connection: str, statement: str) -> Review | None:
        """The oldest approved, not yet executed request of ``requester`` on ``connection`` for exactly
        ``statement`` (no bound parameters), approved no longer ago than its own expiry period: what a requester
        whose client went away may still run, once."""
        q = (select(_R).where(_R.c.status == APPROVED, _R.c.requester == requester, _R.c.connection == connection,
                              _R.c.statement == statement, _R.c.param_count == 0, _R.c.kind == "statement")
             .order_by(_R.c.decided_at).limit(20))
        at = now()
        with self.store._guard(), self.store.engine.connect() as conn:
            for row in conn.execute(q):
                r = _review(row._mapping, [])
                if r.decided_at is not None and at - r.decided_at < timedelta(seconds=r.spec.expires_after):
                    return r
        return None

    def status(self, review_id: str) -> tuple[str, tuple[str, ...], str | None, datetime]:
        """(status, decided_by, decision_reason, expires_at): what a waiting session polls."""
        with self.store._guard(), self.store.engine.connect() as conn:
            r = conn.execute(select(_R.c.status, _R.c.decided_by, _R.c.decision_reason, _R.c.expires_at)
                             .where(_R.c.id == review_id)).first()
        if r is None:
            raise StoreError(f"review {review_id} is not in the store")
        expires = _dated({"e": r.expires_at}, "e")["e"]
        return r.status, tuple(json.loads(r.decided_by or "[]")), r.decision_reason, expires

    def vote(self, review_id: str, reviewer: str, groups: tuple[str, ...], approve: bool,
             reason: str) -> tuple[Review, str]:
        """Add a vote; returns the request after it and its status before. Raises VoteRefused (nothing
        changed, except that a request found past its expiry is marked expired) or StoreError."""
        refusal: VoteRefused | None = None
        with self.store._guard(), self.store.engine.begin() as conn:
            # Take the row first: voters on one request queue here.
            if not conn.execute(update(_R).where(_R.c.id == review_id).values(status=_R.c.status)).rowcount:
                raise VoteRefused(f"no review request {review_id}")
            row = conn.execute(select(_R).where(_R.c.id == review_id)).one()
            votes = [_vote(v._mapping) for v in conn.execute(select(_V).where(_V.c.review_id == review_id))]
            review = _review(row._mapping, votes)
            before = review.status
            at = now()
            if before == PENDING and at >= review.expires_at:
                conn.execute(update(_R).where(_R.c.id == review_id, _R.c.status == PENDING)
                             .values(status=EXPIRED, decided_at=at, decision_reason="nobody decided in time"))
                refusal = VoteRefused("the request has expired")
            else:
                try:
                    check_vote(review.spec, before, review.requester, reviewer, groups, votes, approve, at)
                except VoteRefused as exc:
                    refusal = exc
            if refusal is None:
                conn.execute(insert(_V).values(review_id=review_id, reviewer=reviewer,
                                               groups=json.dumps(list(groups)), approve=int(approve),
                                               reason=reason or None, at=at))
                votes.append(Vote(reviewer, groups, approve, reason))
                result = outcome(review.spec, votes)
                if result != PENDING:
                    deciders = [v.reviewer for v in votes if v.approve] if result == APPROVED else [reviewer]
                    conn.execute(update(_R).where(_R.c.id == review_id, _R.c.status == PENDING).values(
                        status=result, decided_at=at, decided_by=json.dumps(deciders),
                        decision_reason=(reason or None) if result == DENIED else _approval_reasons(votes)))
        if refusal is not None:
            raise refusal
        after = self.get(review_id)
        assert after is not None
        return after, before

    def settle(self, review_id: str, from_status: str, to_status: str, reason: str | None = None) -> bool:
        """Move a request from one state to another if it is still in the first; True when it moved."""
        values: dict[str, Any] = {"status": to_status}
        if to_status == EXECUTED:
            values["executed_at"] = now()
        else:
            values["decided_at"] = now()
            values["decision_reason"] = reason
        with self.store._guard(), self.store.engine.begin() as conn:
            res = conn.execute(update(_R).where(_R.c.id == review_id, _R.c.status == from_status).values(**values))
            return bool(res.rowcount)


def _window_json(w: Window | None) -> dict[str, Any] | None:
    if w is None:
        return None
    return {"days": list(w.days), "start": w.start.strftime("%H:%M"), "end": w.end.strftime("%H:%M"),
            "timezone": w.timezone}


def _window(d: dict[str, Any] | None) -> Window | None:
    if not d:
        return None
    return Window(tuple(d["days"]), time.fromisoformat(d["start"]), time.fromisoformat(d["end"]), d["timezone"])


def _approval_reasons(votes: list[Vote]) -> str | None:
    reasons = [f"{v.reviewer}: {v.reason}" for v in votes if v.approve and v.reason]
    return "; ".join(reasons) or None


def _vote(m: Any) -> Vote:
    return Vote(m["reviewer"], tuple(json.loads(m["groups"])), bool(m["approve"]), m["reason"] or "")


def _review(m: Any, votes: list[Vote]) -> Review:
    row = _dated(dict(m), "created_at", "expires_at", "decided_at", "executed_at")
    spec = json.loads(row["spec"])
    return Review(
        id=row["id"],
        status=row["status"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        requester=row["requester"],
        requester_groups=tuple(json.loads(row["requester_groups"])),
        connection=row["connection"],
        session_id=row["session_id"],
        gateway=row["gateway"],
        rule=row["rule"],
        rule_reason=row["rule_reason"],
        statement=row["statement"],
        redacted=row["redacted"],
        param_count=row["param_count"],
        reason=row["reason"],
        spec=ReviewSpec(tuple(spec["approvers"]), spec["min_approvals"], spec["all_groups"],
                        spec.get("expires_after", 900.0), spec.get("notice_interval", 10.0),
                        _window(spec.get("window"))),
        decided_at=row["decided_at"],
        decided_by=tuple(json.loads(row["decided_by"] or "[]")),
        decision_reason=row["decision_reason"],
        executed_at=row["executed_at"],
        votes=tuple(votes),
        kind=row["kind"],
        access=json.loads(row["access"]) if row["access"] else None,
    )

