"""A PostgreSQL client's statement held for review: the wait, told to the client as NoticeResponses.

The relay stops at the held message (what the client sent after it waits with it, and its socket is not read),
creates the request in the store, then follows the request's state there, so an approval given through any
replica or the CLI releases it. The client is told at once which request it waits for and who can approve it,
and again every ``notice_interval`` (so that idle timeouts between client and gateway do not fire). A
CancelRequest withdraws the request. The outcome is the approved records, or the error the client gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..pipeline import Pipeline, ReviewRequired, Session, StatementRecord, StatementRefused
from ..protocols.postgres import encode
from ..reviews.model import APPROVED, DENIED, EXPIRED, PENDING, WITHDRAWN
from ..store import StoreError

log = logging.getLogger("wardgate.reviews")

POLL_SECONDS = 0.25  # how often a waiting session reads its request's state


@dataclass(slots=True)
class HeldMessage:
    """The client message a review holds, and the frames the client sent after it."""

    held: ReviewRequired
    kind: int
    frame: bytes
    rest: list[tuple[int, bytes, int]]
    review_id: str | None = None
    withdrawn: asyncio.Event = field(default_factory=asyncio.Event)


Outcome = tuple[list[StatementRecord] | None, StatementRefused | None]


async def wait_for_review(pipeline: Pipeline, session: Session, w: HeldMessage,
                          notice: Callable[[bytes], None]) -> Outcome:
    """Create the request and wait for its outcome: (records, None) when approved, (None, error) otherwise."""
    loop = asyncio.get_running_loop()
    spec = w.held.spec
    try:
        earlier = await loop.run_in_executor(None, pipeline.approved_request, session, w.held)
        if earlier is not None:
            w.review_id = earlier.id
            notice(encode.notice_response(f"wardgate: running review {earlier.id}, approved by "
                                          f"{', '.join(earlier.decided_by)} (an approved statement runs once)"))
            return await _run_approved(pipeline, session, w, earlier.id, earlier.decided_by)
        review = await loop.run_in_executor(None, pipeline.request_review, session, w.held)
    except StoreError as exc:
        log.error("cannot create a review request (rule %s): %s", w.held.decision.rule, exc)
        refusal = StatementRefused(
            "58030", f'wardgate: rule "{w.held.decision.rule}" requires approval, and the review store is '
            "unavailable, so the statement is refused", None, "try again when the gateway's store is back")
        return None, pipeline.refuse_held(session, w.held, refusal)
    w.review_id = review.id
    if not session.review_wait:
        notice(encode.notice_response(f'wardgate: statement held for review {review.id} by rule '
                                      f'"{w.held.decision.rule}"; not waiting (wardgate.review_wait is off)'))
        return None, pipeline.left_pending(session, w.held, review)
    expires = review.expires_at
    notice(encode.notice_response(
        f'wardgate: statement held for review {review.id} by rule "{w.held.decision.rule}"; waiting for '
        f"{spec.describe()}",
        detail=f"{w.held.decision.reason + '. ' if w.held.decision.reason else ''}A reviewer runs: wardgate reviews "
               f"approve {review.id} (or deny). The request expires at {_hhmm(expires)} UTC; cancel (Ctrl-C) to "
               "withdraw it."))
    next_notice = time.monotonic() + spec.notice_interval
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(w.withdrawn.wait(), POLL_SECONDS)
        try:
            if w.withdrawn.is_set():  # the requester's cancel wins over an approval that has not run yet
                for state in (PENDING, APPROVED):
                    if await loop.run_in_executor(None, pipeline.reviews.settle, review.id, state, WITHDRAWN,
                                                  "withdrawn by the requester (cancel)"):
                        break
            status, deciders, why, expires = await loop.run_in_executor(None, pipeline.reviews.status, review.id)
            if status == PENDING and datetime.now(UTC) >= expires:
                if await loop.run_in_executor(None, pipeline.reviews.settle, review.id, PENDING, EXPIRED,
                                              "nobody decided in time"):
                    await loop.run_in_executor(None, pipeline.notify_decided, review.id)
                continue
        except StoreError as exc:
            # The state cannot be read: keep waiting (nothing runs unapproved) until the request would expire.
            log.warning("cannot read review %s: %s", review.id, exc)
            if datetime.now(UTC) >= expires:
                return None, pipeline.review_refused(session, w.held, review.id, EXPIRED, (), None)
            continue
        if status == APPROVED:
            return await _run_approved(pipeline, session, w, review.id, deciders)
        if status in (DENIED, EXPIRED, WITHDRAWN):
            return None, pipeline.review_refused(session, w.held, review.id, status, deciders, why)
        if status != PENDING:  # executed elsewhere: an approved request runs once
            return None, pipeline.refuse_held(session, w.held, StatementRefused(
                "42501", f"wardgate: review {review.id} is {status}; an approved statement runs once"))
        if time.monotonic() >= next_notice:
            left = max(0, int((expires - datetime.now(UTC)).total_seconds()))
            notice(encode.notice_response(
                f"wardgate: still waiting for review {review.id} ({spec.describe()}); it expires in "
                f"{left // 60}m{left % 60:02d}s"))
            next_notice = time.monotonic() + spec.notice_interval


async def _run_approved(pipeline: Pipeline, session: Session, w: HeldMessage, review_id: str,
                        deciders: tuple[str, ...]) -> Outcome:
    """Mark the request executed (it runs once), then hand back the records that run."""
    loop = asyncio.get_running_loop()
    try:
        records = await loop.run_in_executor(None, pipeline.review_approved, session, w.held, review_id, deciders)
    except StatementRefused as exc:
        return None, pipeline.refuse_held(session, w.held, exc)
    except StoreError as exc:
        log.error("cannot mark review %s executed: %s", review_id, exc)
        return None, pipeline.refuse_held(session, w.held, StatementRefused(
            "58030", f"wardgate: review {review_id} was approved, but the store cannot record that it runs now, "
            "so it does not run", None, "try again when the gateway's store is back"))
    return records, None


def _hhmm(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%H:%M:%S")
