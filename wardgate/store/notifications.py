"""The notification outbox: review events waiting to be delivered, shared by every gateway of a store.

A gateway claims due rows for a while (``claimed_until``) with a conditional update, so two replicas never send
the same row at once; a gateway that dies mid-delivery leaves a claim that runs out, and the row is sent again
(deliveries are at least once: each carries its id in ``X-Wardgate-Delivery`` for receivers that deduplicate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update

from . import schema
from .db import Store, _dated, now

_N = schema.notifications


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event: str
    review_id: str
    channel: str
    payload: str
    attempts: int


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    def enqueue(self, event: str, review_id: str, messages: list[tuple[str, str]]) -> None:
        """Queue (channel, payload) messages of one event, due now."""
        if not messages:
            return
        at = now()
        with self.store._guard(), self.store.engine.begin() as conn:
            conn.execute(insert(_N), [
                {"created_at": at, "event": event, "review_id": review_id, "channel": channel, "payload": payload,
                 "status": "pending", "attempts": 0, "next_attempt_at": at}
                for channel, payload in messages
            ])

    def claim(self, limit: int, hold: float) -> list[Delivery]:
        """Due deliveries no other gateway holds, claimed for ``hold`` seconds."""
        at = now()
        free = and_(_N.c.status == "pending", _N.c.next_attempt_at <= at,
                    or_(_N.c.claimed_until.is_(None), _N.c.claimed_until < at))
        out = []
        with self.store._guard(), self.store.engine.begin() as conn:
            ids = [r.id for r in conn.execute(select(_N.c.id).where(free).order_by(_N.c.id).limit(limit))]
            for nid in ids:
                taken = conn.execute(update(_N).where(_N.c.id == nid, free)
                                     .values(claimed_until=at + timedelta(seconds=hold))).rowcount
                if taken:
                    r = conn.execute(select(_N).where(_N.c.id == nid)).one()
                    out.append(Delivery(r.id, r.event, r.review_id, r.channel, r.payload, r.attempts))
        return out

    def sent(self, nid: int) -> None:
        with self.store._guard(), self.store.engine.begin() as conn:
            conn.execute(update(_N).where(_N.c.id == nid).values(
                status="sent", sent_at=now(), attempts=_N.c.attempts + 1, claimed_until=None, last_error=None))

    def failed(self, nid: int, error: str, retry_at: datetime | None) -> None:
        """One attempt failed: due again at ``retry_at``, or given up (None)."""
        values: dict[str, Any] = {"attempts": _N.c.attempts + 1, "claimed_until": None, "last_error": error[:2000]}
        if retry_at is None:
            values["status"] = "failed"
        else:
            values["next_attempt_at"] = retry_at
        with self.store._guard(), self.store.engine.begin() as conn:
            conn.execute(update(_N).where(_N.c.id == nid).values(**values))

    def of_review(self, review_id: str) -> list[dict[str, object]]:
        with self.store._guard(), self.store.engine.connect() as conn:
            rows = conn.execute(select(_N).where(_N.c.review_id == review_id).order_by(_N.c.id))
            return [_dated(dict(r._mapping), "created_at", "next_attempt_at", "claimed_until", "sent_at")
                    for r in rows]
