"""Just-in-time access grants: an approved access request becomes a grant when its holder first uses it.

``activate`` is what a session open asks: the holder's grant for the connection that is running, or else the
approved request not used yet, turned into a grant now (its time starts at first use, not at approval). The
request moves from approved to executed in the same transaction as the grant is written, with a conditional
update, so two sessions opening at once make one grant.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from . import schema
from .db import Store, _dated, now

_G = schema.grants
_R = schema.reviews


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    review_id: str
    subject: str
    connection: str
    groups: tuple[str, ...]
    duration: float
    approved_by: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None

    def active(self, at: datetime) -> bool:
        return self.revoked_at is None and at < self.expires_at

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "review": self.review_id, "user": self.subject, "connection": self.connection,
                "groups": list(self.groups), "duration": self.duration, "approved_by": list(self.approved_by),
                "created_at": self.created_at, "expires_at": self.expires_at, "revoked_at": self.revoked_at,
                "revoked_by": self.revoked_by, "revoke_reason": self.revoke_reason}


class GrantStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def activate(self, subject: str, connection: str, max_duration: float) -> tuple[Grant | None, bool]:
        """(the running grant of ``subject`` on ``connection``, whether it was made just now), or (None, False).
        An approved request may be first used within ``max_duration`` of its approval."""
        at = now()
        with self.store._guard(), self.store.engine.begin() as conn:
            running = conn.execute(
                select(_G).where(_G.c.subject == subject, _G.c.connection == connection, _G.c.revoked_at.is_(None),
                                 _G.c.expires_at > at).order_by(_G.c.expires_at.desc()).limit(1)).first()
            if running is not None:
                return _grant(running._mapping), False
            for r in conn.execute(
                    select(_R).where(_R.c.kind == "access", _R.c.status == "approved", _R.c.requester == subject,
                                     _R.c.connection == connection).order_by(_R.c.decided_at)):
                decided = _dated({"d": r.decided_at}, "d")["d"]
                if decided is None or at - decided > timedelta(seconds=max_duration):
                    continue
                if not conn.execute(update(_R).where(_R.c.id == r.id, _R.c.status == "approved")
                                    .values(status="executed", executed_at=at)).rowcount:
                    continue  # another session took it first
                access = json.loads(r.access or "{}")
                duration = min(float(access.get("duration", max_duration)), max_duration)
                row = {"id": secrets.token_hex(5), "review_id": r.id, "subject": subject, "connection": connection,
                       "groups": json.dumps(list(access.get("groups", []))), "duration": duration,
                       "approved_by": r.decided_by or "[]", "created_at": at,
                       "expires_at": at + timedelta(seconds=duration)}
                conn.execute(insert(_G).values(**row))
                made = conn.execute(select(_G).where(_G.c.id == row["id"])).one()
                return _grant(made._mapping), True
        return None, False

    def get(self, grant_id: str) -> Grant | None:
        with self.store._guard(), self.store.engine.connect() as conn:
            rows = list(conn.execute(select(_G).where(_G.c.id.startswith(grant_id, autoescape=True)).limit(2)))
        return _grant(rows[0]._mapping) if len(rows) == 1 else None

    def find(self, subject: str | None = None, connection: str | None = None, limit: int = 100) -> list[Grant]:
        q = select(_G).order_by(_G.c.created_at.desc()).limit(limit)
        if subject:
            q = q.where(_G.c.subject == subject)
        if connection:
            q = q.where(_G.c.connection == connection)
        with self.store._guard(), self.store.engine.connect() as conn:
            return [_grant(r._mapping) for r in conn.execute(q)]

    def revoke(self, grant_id: str, by: str, reason: str | None) -> bool:
        with self.store._guard(), self.store.engine.begin() as conn:
            return bool(conn.execute(update(_G).where(_G.c.id == grant_id, _G.c.revoked_at.is_(None)).values(
                revoked_at=now(), revoked_by=by, revoke_reason=reason)).rowcount)

    def revoked(self, grant_ids: list[str]) -> set[str]:
        """Which of these grants have been revoked (what a gateway's watcher polls)."""
        if not grant_ids:
            return set()
        with self.store._guard(), self.store.engine.connect() as conn:
            rows = conn.execute(select(_G.c.id).where(_G.c.id.in_(grant_ids), _G.c.revoked_at.is_not(None)))
            return {r.id for r in rows}


def _grant(m: Any) -> Grant:
    row = _dated(dict(m), "created_at", "expires_at", "revoked_at")
    return Grant(row["id"], row["review_id"], row["subject"], row["connection"], tuple(json.loads(row["groups"])),
                 float(row["duration"]), tuple(json.loads(row["approved_by"])), row["created_at"], row["expires_at"],
                 row["revoked_at"], row["revoked_by"], row["revoke_reason"])
