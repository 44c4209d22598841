"""Service accounts: named non-human identities (services, agents) with their own groups.

The groups live on the account, not in its tokens: changing an account's groups changes what every token of it
may do at its next login, and disabling the account refuses all its tokens at once, on every replica.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from . import schema
from .db import Store, StoreError, _dated, now

_A = schema.service_accounts


class AccountExists(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    name: str
    groups: tuple[str, ...]
    description: str
    created_at: datetime
    created_by: str
    disabled_at: datetime | None
    disabled_by: str | None

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "groups": list(self.groups), "description": self.description,
                "created_at": self.created_at, "created_by": self.created_by, "disabled_at": self.disabled_at,
                "disabled_by": self.disabled_by}


def _account(m: Any) -> ServiceAccount:
    row = _dated(dict(m), "created_at", "disabled_at")
    return ServiceAccount(row["name"], tuple(json.loads(row["groups"])), row["description"], row["created_at"],
                          row["created_by"], row["disabled_at"], row["disabled_by"])


class ServiceAccounts:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, name: str, groups: list[str], description: str, created_by: str) -> ServiceAccount:
        clean = list(dict.fromkeys(g.strip() for g in groups if g.strip()))
        try:
            with self.store._guard(), self.store.engine.begin() as conn:
                conn.execute(insert(_A).values(name=name, groups=json.dumps(clean), description=description,
                                               created_at=now(), created_by=created_by))
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise AccountExists(name) from None
            raise
        found = self.get(name)
        assert found is not None
        return found

    def get(self, name: str) -> ServiceAccount | None:
        with self.store._guard(), self.store.engine.connect() as conn:
            row = conn.execute(select(_A).where(_A.c.name == name)).first()
        return _account(row._mapping) if row else None

    def all(self) -> list[ServiceAccount]:
        with self.store._guard(), self.store.engine.connect() as conn:
            return [_account(r._mapping) for r in conn.execute(select(_A).order_by(_A.c.name))]

    def set_groups(self, name: str, groups: list[str]) -> bool:
        clean = list(dict.fromkeys(g.strip() for g in groups if g.strip()))
        with self.store._guard(), self.store.engine.begin() as conn:
            res = conn.execute(update(_A).where(_A.c.name == name).values(groups=json.dumps(clean)))
            return bool(res.rowcount)

    def disable(self, name: str, by: str) -> bool:
        """Disable the account: every token of it is refused from now on. False if unknown or already disabled."""
        with self.store._guard(), self.store.engine.begin() as conn:
            res = conn.execute(update(_A).where(_A.c.name == name, _A.c.disabled_at.is_(None))
                               .values(disabled_at=now(), disabled_by=by))
            return bool(res.rowcount)
