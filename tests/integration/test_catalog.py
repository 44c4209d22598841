"""The catalog against the real server: the (table OID, attnum) PostgreSQL puts in a RowDescription, turned into
the names masking rules use, through views, materialized views, partitions, renames and drops; its cache, its one
shared connection, and how it fails when the upstream cannot be read.

Each test has a database of its own, dropped at the end. Everything async runs under uvloop, as the gateway does.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import psycopg
import pytest
import uvloop
from psycopg import sql

from tests.ports import free_port
from tests.unit.test_catalog_nodetree import CAPTURED_FROM
from wardgate.catalog import MAX_DEPTH, Catalog, CatalogUnavailable, ColumnName
from wardgate.config import PostgresConnection

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
T = TypeVar("T")

CUSTOMERS = """
CREATE TABLE customers (id int PRIMARY KEY, name text, email text);
INSERT INTO customers VALUES (1, 'Ann', 'ann@example.com');
"""


def run(
    coro: Coroutine[Any, Any, T], loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
) -> T:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


def n(dotted: str) -> ColumnName:
    """``schema.table.column`` for the plain names these tests use."""
    schema, table, column = dotted.split(".")
    return ColumnName(schema, table, column)


@pytest.fixture
def db() -> Iterator[str]:
    name = f"wg_cat_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def connect(db: str) -> psycopg.Connection[Any]:
    return psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}", autocommit=True)


def execute(db: str, ddl: str) -> None:
    with connect(db) as conn:
        conn.execute(ddl.encode())  # bytes: several statements, no parameters


def described(db: str, query: str) -> list[tuple[int, int]]:
    """What the RowDescription of ``query`` says about each column: (table OID, attnum)."""
    with connect(db) as conn:
        cur = conn.execute(query.encode())
        res = cur.pgresult
        assert res is not None
        return [(res.ftable(i), res.ftablecol(i)) for i in range(res.nfields)]


def oid(db: str, relation: str) -> int:
    with connect(db) as conn:
        row = conn.execute("SELECT %s::regclass::oid", [relation]).fetchone()
        assert row is not None
        return int(row[0])


def upstream(db: str, **extra: Any) -> PostgresConnection:
    return PostgresConnection.model_validate({"upstream": f"postgresql://postgres@127.0.0.1:5432/{db}", **extra})


def resolve(db: str, *queries: str, catalog: Catalog | None = None) -> list[list[tuple[ColumnName, ...] | None]]:
    """Each query's result columns, named by a catalog that loads what their RowDescriptions point at."""
    columns = [described(db, q) for q in queries]

    async def go() -> list[list[tuple[ColumnName, ...] | None]]:
        cat = catalog or Catalog(upstream(db), "shop")
        try:
            await cat.load({t for cols in columns for t, _ in cols})
            return [[cat.names(t, a) for t, a in cols] for cols in columns]
        finally:
            await cat.close()

    return run(go())


# --- names ----------------------------------------------------------------------------------------------------------


def test_table_columns_aliases_and_star(db: str) -> None:
    execute(db, CUSTOMERS)
    star, alias, mixed = resolve(db, "SELECT * FROM customers", "SELECT email AS e FROM customers",
                                 "SELECT upper(email), 1, email FROM customers c")
    assert star == [(n("public.customers.id"),), (n("public.customers.name"),), (n("public.customers.email"),)]
    assert alias == [(n("public.customers.email"),)]
    assert mixed == [(), (), (n("public.customers.email"),)]  # expressions: oid 0


def test_views(db: str) -> None:
    execute(db, CUSTOMERS + """
        CREATE VIEW contacts AS SELECT id, email AS contact, upper(name) AS shout FROM customers;
        CREATE VIEW contacts2 AS SELECT contact AS c2, shout FROM contacts;
        CREATE VIEW contacts3 AS SELECT c2 AS c3 FROM contacts2 WHERE c2 IS NOT NULL;
        CREATE MATERIALIZED VIEW snapshot AS SELECT contact AS email FROM contacts;
    """)
    view, chain, matview = resolve(db, "SELECT * FROM contacts", "SELECT c3 FROM contacts3", "SELECT * FROM snapshot")
    assert view == [
        (n("public.contacts.id"), n("public.customers.id")),
        (n("public.contacts.contact"), n("public.customers.email")),
        (n("public.contacts.shout"),),  # an expression: only the view's own name
    ]
    assert chain == [
        (n("public.contacts3.c3"), n("public.contacts2.c2"), n("public.contacts.contact"), n("public.customers.email"))
    ]
    assert matview == [(n("public.snapshot.email"), n("public.contacts.contact"), n("public.customers.email"))]


def test_the_captured_views_live(db: str) -> None:
    """The definitions the parser's fixtures come from, on this server: union branches, CTEs, odd names."""
    execute(db, CAPTURED_FROM)
    got = dict(zip(["union", "nasty", "cte", "sub", "setnest", "sublink", "odd"], resolve(
        db, "SELECT * FROM v_union", "SELECT * FROM v_nasty", "SELECT * FROM v_cte", "SELECT * FROM v_sub",
        "SELECT * FROM v_setnest", "SELECT * FROM v_sublink", "SELECT * FROM v_odd"), strict=True))
    email, name, ident = n("public.customers.email"), n("public.customers.name"), n("public.customers.id")
    assert got["union"] == [(n("public.v_union.email"), email, name)]
    assert got["setnest"] == [(n("public.v_setnest.email"), email, name), (n("public.v_setnest.id"), ident)]
    assert got["nasty"] == [
        (ColumnName("public", "v_nasty", ":resorigtbl"), email),
        (ColumnName("public", "v_nasty", "}{TARGETENTRY :resjunk false"), name),
        (ColumnName("public", "v_nasty", 'a\\b (c) "d"'), ident),
        (ColumnName("public", "v_nasty", "<>"), email),
        (ColumnName("public", "v_nasty", "1x"), name),
        (ColumnName("public", "v_nasty", " lead"), ident),
    ]
    assert got["cte"] == [(n("public.v_cte.id"), ident), (n("public.v_cte.email"), email)]
    assert got["sub"] == [(n("public.v_sub.e"), email), (n("public.v_sub.i"), ident)]
    assert got["sublink"] == [(n("public.v_sublink.email"), email), (n("public.v_sublink.mx"),)]
    assert got["odd"] == [(ColumnName("public", "v_odd", 'with space "q"'), ColumnName("public", "customers",
                                                                                         'Odd "Col" name'))]


def test_partitions_are_named_as_their_partitioned_table(db: str) -> None:
    execute(db, """
        CREATE TABLE events (id int, email text, at date) PARTITION BY RANGE (at);
        CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE events_2023 (at date, extra int, id int, email text);
        ALTER TABLE events_2023 DROP COLUMN extra;
        ALTER TABLE events ATTACH PARTITION events_2023 FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
        CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
          PARTITION BY LIST (id);
        CREATE TABLE events_2025_a PARTITION OF events_2025 FOR VALUES IN (1);
    """)
    parent, part, moved, sub = resolve(db, "SELECT email FROM events", "SELECT email FROM events_2024",
                                       "SELECT email, id FROM events_2023", "SELECT email FROM events_2025_a")
    assert parent == [(n("public.events.email"),)]
    assert part == [(n("public.events_2024.email"), n("public.events.email"))]
    # Different attnums in the attached partition (email is 4 there, 2 in the parent): matched by name.
    assert described(db, "SELECT email FROM events_2023")[0][1] == 4
    assert moved == [(n("public.events_2023.email"), n("public.events.email")),
                     (n("public.events_2023.id"), n("public.events.id"))]
    assert sub == [(n("public.events_2025_a.email"), n("public.events_2025.email"), n("public.events.email"))]


def test_quoted_names_in_another_schema(db: str) -> None:
    execute(db, '''
        CREATE SCHEMA "Sales Dept";
        CREATE TABLE "Sales Dept"."Client List" ("E-Mail" text, "Name" text);
        CREATE VIEW "Sales Dept"."Mail.View" AS
          SELECT "E-Mail" AS "Contact ""Address""" FROM "Sales Dept"."Client List";
    ''')
    table, view = resolve(db, 'SELECT * FROM "Sales Dept"."Client List"', 'SELECT * FROM "Sales Dept"."Mail.View"')
    assert table == [(ColumnName("Sales Dept", "Client List", "E-Mail"),),
                     (ColumnName("Sales Dept", "Client List", "Name"),)]
    assert view == [(ColumnName("Sales Dept", "Mail.View", 'Contact "Address"'),
                     ColumnName("Sales Dept", "Client List", "E-Mail"))]
    assert str(ColumnName("Sales Dept", "Client List", "E-Mail")) == "Sales Dept.Client List.E-Mail"


def test_rename_drop_and_unknown(db: str) -> None:
    execute(db, CUSTOMERS + "CREATE VIEW contacts AS SELECT email FROM customers; CREATE TABLE gone (a int);")
    customers, contacts, gone = oid(db, "customers"), oid(db, "contacts"), oid(db, "gone")

    async def go() -> None:
        cat = Catalog(upstream(db), "shop")
        try:
            await cat.load([customers, contacts, gone, 4_000_000_000])
            assert cat.names(contacts, 1) == (n("public.contacts.email"), n("public.customers.email"))
            assert cat.names(4_000_000_000, 1) == ()  # no such relation
            assert cat.names(customers, 99) == ()  # no such column
            assert cat.names(customers, 0) == ()
            assert cat.missing([customers, contacts, gone, 4_000_000_000, 0]) == set()

            execute(db, "ALTER TABLE customers RENAME COLUMN email TO mail; ALTER TABLE customers DROP COLUMN name;"
                        "DROP TABLE gone")
            assert cat.names(customers, 3) == (n("public.customers.email"),)  # cached until told
            cat.invalidate()
            assert cat.names(customers, 3) is None
            assert cat.missing([customers, contacts, gone]) == {customers, contacts, gone}
            await cat.load([customers, contacts, gone])
            assert cat.names(customers, 3) == (n("public.customers.mail"),)
            assert cat.names(contacts, 1) == (n("public.contacts.email"), n("public.customers.mail"))
            assert cat.names(customers, 2) == ()  # dropped
            assert cat.names(gone, 1) == ()  # dropped table
        finally:
            await cat.close()

    run(go())


def test_ttl(db: str) -> None:
    execute(db, CUSTOMERS + "CREATE VIEW contacts AS SELECT email FROM customers;")
    customers, contacts = oid(db, "customers"), oid(db, "contacts")

    async def go() -> None:
        cat = Catalog(upstream(db), "shop", ttl=0.05)
        try:
            await cat.load([contacts])
            assert cat.names(contacts, 1) is not None
            assert cat.names(customers, 3) is not None  # loaded on the way
            await asyncio.sleep(0.1)
            assert cat.names(contacts, 1) is None
            assert cat.missing([contacts, customers]) == {contacts, customers}
            await cat.load([contacts])
            assert cat.names(contacts, 1) == (n("public.contacts.email"), n("public.customers.email"))
        finally:
            await cat.close()

    run(go())


# --- loading ---------------------------------------------------------------------------------------------------------


class Counted:
    """Counts the catalog's relation queries by wrapping the one method that runs them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, before: Callable[[], None] | None = None) -> None:
        self.calls: list[list[int]] = []
        real = Catalog._execute

        async def wrapped(conn: psycopg.AsyncConnection[Any], oids: list[int]) -> list[tuple[Any, ...]]:
            self.calls.append(oids)
            if before is not None:
                before()
            return await real(conn, oids)

        monkeypatch.setattr(Catalog, "_execute", staticmethod(wrapped))


def chain(levels: int) -> str:
    ddl = CUSTOMERS + "CREATE VIEW v1 AS SELECT email AS e1 FROM customers;"
    return ddl + "".join(f"CREATE VIEW v{i} AS SELECT e{i - 1} AS e{i} FROM v{i - 1};" for i in range(2, levels + 1))


def test_concurrent_loads_share_one_fetch(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    execute(db, chain(3))
    v3 = oid(db, "v3")
    counted = Counted(monkeypatch)

    async def go() -> None:
        cat = Catalog(upstream(db), "shop")
        try:
            await asyncio.gather(*(cat.load([v3]) for _ in range(20)))
            assert cat.names(v3, 1) == (n("public.v3.e3"), n("public.v2.e2"), n("public.v1.e1"),
                                        n("public.customers.email"))
        finally:
            await cat.close()

    run(go())
    assert len(counted.calls) == 4  # one query per level (v3, v2, v1, customers), however many callers


def test_chain_depth_is_capped(db: str) -> None:
    execute(db, chain(MAX_DEPTH))  # MAX_DEPTH views + the table: one level too many
    top, ok = oid(db, f"v{MAX_DEPTH}"), oid(db, f"v{MAX_DEPTH - 1}")

    async def go() -> None:
        cat = Catalog(upstream(db), "shop")
        try:
            await cat.load([ok])
            names = cat.names(ok, 1)
            assert names is not None and len(names) == MAX_DEPTH
            cat.invalidate()
            with pytest.raises(CatalogUnavailable, match="nested more than"):
                await cat.load([top])
        finally:
            await cat.close()

    run(go())


def test_invalidate_during_a_load_starts_it_over(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    execute(db, CUSTOMERS)
    customers = oid(db, "customers")
    cat = Catalog(upstream(db), "shop")
    counted = Counted(monkeypatch, before=lambda: cat.invalidate() if len(counted.calls) == 1 else None)

    async def go() -> None:
        try:
            await cat.load([customers])
            assert cat.names(customers, 3) == (n("public.customers.email"),)
        finally:
            await cat.close()

    run(go())
    assert len(counted.calls) == 2


def test_reconnects_once_when_the_connection_dies(db: str, caplog: pytest.LogCaptureFixture) -> None:
    execute(db, CUSTOMERS + "CREATE TABLE other (a int);")
    customers, other = oid(db, "customers"), oid(db, "other")

    def catalog_backends() -> list[int]:
        with connect(db) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                                [db, "wardgate-catalog"]).fetchall()
            return [int(r[0]) for r in rows]

    async def go() -> None:
        cat = Catalog(upstream(db), "shop")
        try:
            await cat.load([customers])
            [first] = catalog_backends()
            with connect(db) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", [first])
            await cat.load([other])
            assert cat.names(other, 1) == (n("public.other.a"),)
            assert catalog_backends() not in ([], [first])
            assert 'catalog connection of "shop" lost' in caplog.text
            assert "terminating connection due to administrator command" in caplog.text
        finally:
            await cat.close()
        assert catalog_backends() == []

    run(go())


def test_plain_asyncio_loop_too(db: str) -> None:
    execute(db, CUSTOMERS)
    columns = described(db, "SELECT email FROM customers")

    async def go() -> tuple[ColumnName, ...] | None:
        cat = Catalog(upstream(db), "shop")
        try:
            await cat.load(t for t, _ in columns)
            return cat.names(*columns[0])
        finally:
            await cat.close()

    assert run(go(), loop_factory=asyncio.new_event_loop) == (n("public.customers.email"),)


# --- failures -------------------------------------------------------------------------------------------------------


def test_unreachable_upstream_fails_fast_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_CATALOG_TEST_PW", "pw-Very-Secret-123")
    port = free_port()
    conn = PostgresConnection.model_validate(
        {"upstream": f"postgresql://app@127.0.0.1:{port}/shop", "password": "env:WG_CATALOG_TEST_PW"}
    )

    async def go() -> str:
        cat = Catalog(conn, "shop-prod")
        try:
            with pytest.raises(CatalogUnavailable) as info:
                await cat.load([16384])
            return str(info.value)
        finally:
            await cat.close()

    started = time.monotonic()
    message = run(go())
    assert time.monotonic() - started < 2
    assert "shop-prod" in message and "refused" in message and f"127.0.0.1:{port}" in message
    assert "pw-Very-Secret-123" not in message and "password" not in message.lower()


def test_silent_upstream_times_out_at_connect_timeout() -> None:
    """A server that accepts TCP and never answers: refused after connect_timeout, not libpq's 2 s minimum."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        conn = PostgresConnection.model_validate(
            {"upstream": f"postgresql://app@127.0.0.1:{port}/shop", "connect_timeout": 0.3}
        )

        async def go() -> list[BaseException | None]:
            cat = Catalog(conn, "shop")
            try:
                return await asyncio.gather(*(cat.load([16384 + i]) for i in range(10)), return_exceptions=True)
            finally:
                await cat.close()

        started = time.monotonic()
        failures = run(go())
        # Ten sessions at once: the nine that waited share the first one's failure instead of queueing 10 timeouts.
        assert time.monotonic() - started < 1.5
        assert all(isinstance(f, CatalogUnavailable) for f in failures)
        assert {str(f) for f in failures} == {
            f'cannot read the catalog of connection "shop" (127.0.0.1:{port}/shop as app): '
            "timed out after 0.3s connecting"
        }


def test_a_blocked_query_times_out_and_the_next_load_reconnects(db: str) -> None:
    """A catalog read stuck behind a lock fails after connect_timeout; the stuck connection is dropped, not reused."""
    execute(db, CUSTOMERS + "CREATE TABLE other (a int);")
    customers, other = oid(db, "customers"), oid(db, "other")

    async def go() -> None:
        cat = Catalog(upstream(db, connect_timeout=0.5), "shop")
        try:
            await cat.load([customers])
            with connect(db) as locker:
                locker.execute("BEGIN")
                locker.execute("LOCK TABLE pg_catalog.pg_inherits IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                with pytest.raises(CatalogUnavailable, match=r"timed out after 0\.5s reading the catalog"):
                    await cat.load([other])
                assert time.monotonic() - started < 1.5
                locker.execute("ROLLBACK")
            await cat.load([other])
            assert cat.names(other, 1) == (n("public.other.a"),)
        finally:
            await cat.close()

    run(go())


def test_server_errors_name_the_connection(db: str) -> None:
    async def go() -> str:
        cat = Catalog(upstream(db + "_missing"), "shop")
        try:
            with pytest.raises(CatalogUnavailable) as info:
                await cat.load([1])
            return str(info.value)
        finally:
            await cat.close()

    message = run(go())
    assert 'connection "shop"' in message and "does not exist" in message
