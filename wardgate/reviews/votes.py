"""Casting a vote, the one path for the CLI and the HTTP API: the store's transaction, the audit events of the
vote and of the decision it completes, and the decision's notifications.

``record(kind, detail)`` writes an audit event about the review (the CLI writes to the store, a gateway to its
journal); the details name the review, its rule and requester, and the voter's groups, never a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..config import NotificationsConfig
from ..identity.model import Identity
from ..store import StoreError
from ..store.notifications import Outbox
from ..store.reviews import Review, ReviewStore
from .model import APPROVED, DENIED, VoteRefused
from .notify import DECIDED, messages

log = logging.getLogger("wardgate.reviews")

Record = Callable[[str, Review, dict[str, Any]], None]


def details(review: Review, who: Identity, extra: dict[str, Any]) -> dict[str, Any]:
    return {"review": review.id, "rule": review.rule, "requester": review.requester, "groups": list(who.groups),
            **extra}


def cast(rs: ReviewStore, outbox: Outbox, notifications: NotificationsConfig, who: Identity, review: Review,
         approve: bool, reason: str, record: Record, gateway: str) -> Review:
    """Vote as ``who``; returns the request after the vote. Raises VoteRefused (recorded) or StoreError."""
    verb = "approve" if approve else "deny"
    try:
        after, _ = rs.vote(review.id, who.subject, who.groups, approve, reason)
    except VoteRefused as exc:
        record("review_vote_refused", review, {"vote": verb, "why": exc.reason})
        raise
    record("review_vote", after, {"vote": verb, "reason": reason or None})
    if after.status == APPROVED:
        record("review_approved", after, {"approved_by": list(after.decided_by)})
    elif after.status == DENIED:
        record("review_denied", after, {"denied_by": who.subject, "reason": reason or None})
    if after.status in (APPROVED, DENIED):
        try:
            outbox.enqueue(DECIDED, after.id, messages(notifications, DECIDED, after.public(), gateway))
        except StoreError as exc:  # the decision stands; only its notice is missing (and logged)
            log.error("review %s is decided, but its notifications could not be queued: %s", after.id, exc)
    return after
