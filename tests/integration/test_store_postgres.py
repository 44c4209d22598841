"""The same schema on PostgreSQL: migrations agree with the tables, and replicas share one store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.conftest import UpstreamDB, flush_wait, run_gateway
from wardgate.store import Store
from wardgate.store.schema import metadata


def _schema_diff(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_migrations_match_the_tables_on_sqlite(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    store.migrate()  # idempotent
    assert _schema_diff(store) == []
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_migrations_match_the_tables_on_postgres(pg_store_url: str) -> None:
    store = Store(pg_store_url)
    store.migrate()
    store.migrate()
    assert _schema_diff(store) == []
    store.close()


def test_two_replicas_share_a_postgres_store(pg_store_url: str, upstream: UpstreamDB, tmp_path: Path) -> None:
    with (
        run_gateway(tmp_path / "a", upstream, store_url=pg_store_url) as a,
        run_gateway(tmp_path / "b", upstream, store_url=pg_store_url) as b,
    ):
        token = a.token("replica-user")  # issued through replica a ...
        for gw in (a, b):  # ... accepted by both: the signing key lives in the shared store
            with psycopg.connect(gw.dsn("replica-user", token)) as conn:
                assert conn.execute("select count(*) from customers").fetchone() == (50,)
        store = Store(pg_store_url)

        def ended() -> list[dict[str, Any]]:
            return [s for s in store.sessions(user="replica-user") if s["ended_at"]]

        flush_wait(lambda: len(ended()) == 2)
        sessions = ended()
        assert len(sessions) == 2
        assert len({s["gateway"] for s in sessions}) == 2
        for s in sessions:
            texts = [st["text"] for st in store.statements(s["id"])]
            assert texts == ["BEGIN", "select count(*) from customers", "COMMIT"]
