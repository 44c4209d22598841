"""Persistence: SQLAlchemy Core tables, Alembic migrations, and the queries the rest of wardgate needs."""

from .db import Store, StoreError

__all__ = ["Store", "StoreError"]
