"""Real client libraries through the gateway: psycopg 3, asyncpg and pg8000, and many clients at once.

Each test runs one scenario on a direct connection and through the gateway, asserts the client sees the same
thing both ways, and then reads the audit store: a session for a user of its own, one statement row per
execution with redacted text, the protocol, the parameter count and the outcome the server gave.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import pg8000.dbapi
import pg8000.native
import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.conftest import PG_HOST, PG_PORT, Gateway, UpstreamDB, flush_wait, recorded, unverified_tls

EMAIL = "c7@example.com"
CARD = "4111111111111111"
SECRET_EMAIL = "alice.secret@example.org"
COLUMNS = "id, name, email, card_number, balance, active, joined, tags, profile"


def new_user(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def assert_clean(stmts: list[dict[str, Any]], *values: str) -> None:
    """No literal value used in a query may be stored, neither in the text nor in an error message."""
    assert values
    for st in stmts:
        for value in values:
            assert value not in (st["text"] or ""), f"{value!r} stored in {st['text']!r}"
            assert value not in (st["error_message"] or ""), f"{value!r} stored in {st['error_message']!r}"


def outcomes(stmts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(s["kind"], s["status"], s["command_tag"], s["row_count"]) for s in stmts]


def client_ssl() -> ssl.SSLContext:
    """TLS without verification: the test gateway's certificate is self-signed (sslmode=require)."""
    ctx = unverified_tls()
    return ctx


# === psycopg 3 ================================================================================================


# Tests that raise notices with DO blocks (which the default rule pack refuses) connect as a group the test
# gateways exempt from that pack (tests/conftest.py).
DBA = "eng,dba"


def pg_gateway(gateway: Gateway, user: str, groups: str = "eng", **kw: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(gateway.dsn(user, gateway.token(user, groups)), **kw)


def on_both(gateway: Gateway, upstream: UpstreamDB, user: str, scenario: Callable[[psycopg.Connection[Any]], Any],
            groups: str = "eng", **kw: Any) -> Any:
    """Run ``scenario`` directly and through the gateway; they must give the same result."""
    with upstream.connect(**kw) as conn:
        direct = scenario(conn)
    with pg_gateway(gateway, user, groups, **kw) as conn:
        via = scenario(conn)
    assert via == direct
    return via


def test_psycopg_text_and_binary_results(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-types")
    query = f"SELECT {COLUMNS} FROM customers WHERE id <= %s ORDER BY id"

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        text_cur = conn.cursor()
        text_rows = text_cur.execute(query, (50,)).fetchall()
        bin_cur = conn.cursor(binary=True)
        bin_rows = bin_cur.execute(query, (50,)).fetchall()
        literal = conn.cursor(binary=True).execute(
            f"SELECT id, card_number FROM customers WHERE email = '{EMAIL}'").fetchall()
        assert text_rows == bin_rows
        descr = [(c.name, c.type_code) for c in text_cur.description or []]
        assert descr == [(c.name, c.type_code) for c in bin_cur.description or []]
        return text_rows, literal, descr

    rows, literal, _ = on_both(gateway, upstream, user, scenario, application_name="types")
    assert len(rows) == 50 and literal == [(7, CARD)]
    assert rows[6] == (7, "Customer 7", EMAIL, CARD, Decimal("10.50"), False, date(2024, 1, 8), ["t7", "x"],
                       {"n": 7, "k": "v7"})
    session, stmts = recorded(gateway, user)
    assert session["application_name"] == "types"
    assert outcomes(stmts) == [
        ("transaction", "ok", "BEGIN", 0),
        ("select", "ok", "SELECT 50", 50),
        ("select", "ok", "SELECT 50", 50),
        ("select", "ok", "SELECT 1", 1),
        ("transaction", "ok", "COMMIT", 0),
    ]
    assert [(s["protocol"], s["param_count"]) for s in stmts[1:4]] == [("extended", 1)] * 2 + [("extended", 0)]
    assert stmts[1]["text"] == f"SELECT {COLUMNS} FROM customers WHERE id <= $1 ORDER BY id"
    assert stmts[3]["text"] == "SELECT id, card_number FROM customers WHERE email = $1"
    assert_clean(stmts, EMAIL)


def test_psycopg_parameters_of_many_types_and_executemany(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-params")
    people = [(i, f"person{i}.{SECRET_EMAIL}", f"{CARD[:-2]}{i:02d}") for i in range(1, 11)]

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        conn.execute("CREATE TEMP TABLE people (id int PRIMARY KEY, email text, card text)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO people (id, email, card) VALUES (%s, %s, %s)", people)
        typed = conn.execute(
            "SELECT %s::int + 1, %s::text, %s::numeric * 2, NOT %s::bool, %s::date + 1, %s::text[], %s::jsonb",
            (41, SECRET_EMAIL, Decimal("1.25"), True, date(2024, 2, 28), ["a", "b c", None], Jsonb({"k": [1]})),
        ).fetchone()
        nulls = conn.execute("SELECT %s::text IS NULL, %s::int", (None, None)).fetchone()
        stored = conn.execute("SELECT id, email, card FROM people WHERE card LIKE %s ORDER BY id",
                              (CARD[:6] + "%",)).fetchall()
        return typed, nulls, stored

    typed, nulls, stored = on_both(gateway, upstream, user, scenario, autocommit=True)
    assert typed == (42, SECRET_EMAIL, Decimal("2.50"), False, date(2024, 2, 29), ["a", "b c", None], {"k": [1]})
    assert nulls == (True, None)
    assert stored == people
    _, stmts = recorded(gateway, user)
    assert outcomes(stmts) == [("create", "ok", "CREATE TABLE", 0)] + [("insert", "ok", "INSERT 0 1", 1)] * 10 + [
        ("select", "ok", "SELECT 1", 1), ("select", "ok", "SELECT 1", 1), ("select", "ok", "SELECT 10", 10)]
    inserts = stmts[1:11]
    assert {(s["text"], s["param_count"], s["protocol"]) for s in inserts} == {
        ("INSERT INTO people (id, email, card) VALUES ($1, $2, $3)", 3, "extended")}
    assert stmts[11]["param_count"] == 7 and stmts[12]["param_count"] == 2
    assert stmts[11]["text"] == ("SELECT $1::int + $8, $2::text, $3::numeric * $9, NOT $4::bool, $5::date + $10, "
                                 "$6::text[], $7::jsonb")
    assert_clean(stmts, SECRET_EMAIL, CARD[:-2])


def test_psycopg_server_side_cursor(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-named")

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        with conn.cursor(name="big_cursor") as cur:
            cur.itersize = 7
            cur.execute("SELECT id, email, profile FROM customers WHERE id > %s AND card_number = %s ORDER BY id",
                        (0, CARD))
            return list(cur)

    rows = on_both(gateway, upstream, user, scenario)
    assert [r[0] for r in rows] == list(range(1, 51)) and rows[6][1] == EMAIL
    _, stmts = recorded(gateway, user)
    kinds = [s["kind"] for s in stmts]
    assert kinds[:2] == ["transaction", "declare"] and kinds[-2:] == ["close", "transaction"], kinds
    fetches = stmts[2:-2]
    assert {s["kind"] for s in fetches} == {"fetch"} and all(s["status"] == "ok" for s in stmts)
    assert [s["row_count"] for s in fetches] == [7] * 7 + [1]
    assert [s["command_tag"] for s in fetches] == ["FETCH 7"] * 7 + ["FETCH 1"]
    declare = stmts[1]
    assert declare["param_count"] == 2 and declare["command_tag"] == "DECLARE CURSOR"
    assert declare["text"] == ('DECLARE "big_cursor" CURSOR FOR SELECT id, email, profile FROM customers '
                               "WHERE id > $1 AND card_number = $2 ORDER BY id")
    assert_clean(stmts, CARD)


def run_pipeline(conn: psycopg.Connection[Any]) -> list[Any]:
    """Statements in pipelines; one fails, so the server skips the next one up to the Sync.

    psycopg raises the error either while queueing a later statement or at the Sync that ends the block,
    depending on when the ErrorResponse arrives; either way it leaves the ``with`` block, and what the server
    received is the same: P/B/D/E four times, then Sync.
    """
    out: list[Any] = []
    with pytest.raises(errors.DivisionByZero) as exc_info, conn.pipeline():
        c1 = conn.execute("SELECT count(*) FROM customers WHERE id <= %s", (20,))
        c2 = conn.execute("SELECT email FROM customers WHERE id = %s", (3,))
        conn.execute("SELECT id / %s FROM customers WHERE email = %s", (0, EMAIL))
        conn.execute("SELECT name FROM customers WHERE card_number = %s LIMIT 2", (CARD,))
    out.append((type(exc_info.value).__name__, exc_info.value.sqlstate))
    out.append(c1.fetchall())
    out.append(c2.fetchall())
    with conn.pipeline() as p:
        c5 = conn.execute("SELECT name FROM customers WHERE id = %s", (5,))
        c6 = conn.execute("SELECT count(*) FROM customers WHERE card_number = %s", (CARD,))
        p.sync()
        out.append(c5.fetchall())
        out.append(c6.fetchall())
    return out


def test_psycopg_pipeline_mode_with_a_failing_statement(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-pipeline")
    out = on_both(gateway, upstream, user, run_pipeline, autocommit=True)
    assert out == [("DivisionByZero", "22012"), [(20,)], [("c3@example.com",)], [("Customer 5",)], [(50,)]]
    _, stmts = recorded(gateway, user)
    assert [(s["status"], s["sqlstate"], s["command_tag"], s["row_count"]) for s in stmts] == [
        ("ok", None, "SELECT 1", 1),
        ("ok", None, "SELECT 1", 1),
        ("error", "22012", None, None),
        ("skipped", None, None, None),
        ("ok", None, "SELECT 1", 1),
        ("ok", None, "SELECT 1", 1),
    ]
    assert all(s["protocol"] == "extended" and s["kind"] == "select" for s in stmts)
    assert [s["param_count"] for s in stmts] == [1, 1, 2, 1, 1, 1]
    assert stmts[2]["text"] == "SELECT id / $1 FROM customers WHERE email = $2"
    assert stmts[3]["text"] == "SELECT name FROM customers WHERE card_number = $1 LIMIT $2"
    assert stmts[2]["error_message"] == "division by zero"
    assert_clean(stmts, EMAIL, CARD)


def test_psycopg_transactions_and_rollback(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-tx")

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, email text)")
        with conn.transaction():
            conn.execute("INSERT INTO t VALUES (%s, %s)", (1, "one@example.com"))
            with pytest.raises(errors.UniqueViolation), conn.transaction():
                conn.execute("INSERT INTO t VALUES (%s, %s)", (2, "two@example.com"))
                conn.execute("INSERT INTO t VALUES (%s, %s)", (1, SECRET_EMAIL))
            conn.execute("INSERT INTO t VALUES (%s, %s)", (3, "three@example.com"))
        with conn.transaction() as tx:
            conn.execute("INSERT INTO t VALUES (%s, %s)", (4, "four@example.com"))
            raise psycopg.Rollback(tx)
        return conn.execute("SELECT id, email FROM t ORDER BY id").fetchall()

    rows = on_both(gateway, upstream, user, scenario, autocommit=True)
    assert rows == [(1, "one@example.com"), (3, "three@example.com")]
    _, stmts = recorded(gateway, user)
    got = [(s["kind"], s["status"], s["command_tag"], s["sqlstate"]) for s in stmts]
    assert got == [
        ("create", "ok", "CREATE TABLE", None),
        ("transaction", "ok", "BEGIN", None),
        ("insert", "ok", "INSERT 0 1", None),
        ("transaction", "ok", "SAVEPOINT", None),
        ("insert", "ok", "INSERT 0 1", None),
        ("insert", "error", None, "23505"),
        ("transaction", "ok", "ROLLBACK", None),  # ROLLBACK TO SAVEPOINT
        ("transaction", "ok", "RELEASE", None),
        ("insert", "ok", "INSERT 0 1", None),
        ("transaction", "ok", "COMMIT", None),
        ("transaction", "ok", "BEGIN", None),
        ("insert", "ok", "INSERT 0 1", None),
        ("transaction", "ok", "ROLLBACK", None),
        ("select", "ok", "SELECT 2", None),
    ], got
    assert stmts[3]["text"].startswith('SAVEPOINT "_pg3_') and stmts[6]["text"].startswith('ROLLBACK TO "_pg3_')
    assert_clean(stmts, SECRET_EMAIL, "one@example.com")

    # the same in non-autocommit mode with explicit commit/rollback
    user2 = new_user("psycopg-tx2")

    def explicit(conn: psycopg.Connection[Any]) -> Any:
        conn.execute("CREATE TEMP TABLE t2 (id int)")
        conn.commit()
        conn.execute("INSERT INTO t2 VALUES (%s)", (1,))
        conn.rollback()
        conn.execute("INSERT INTO t2 VALUES (%s)", (2,))
        conn.commit()
        with pytest.raises(errors.InFailedSqlTransaction):
            with pytest.raises(errors.DivisionByZero):
                conn.execute("SELECT 1 / %s", (0,))
            conn.execute("SELECT 1")
        conn.rollback()
        return conn.execute("SELECT array_agg(id) FROM t2").fetchone()

    assert on_both(gateway, upstream, user2, explicit) == ([2],)
    _, stmts = recorded(gateway, user2)
    assert [(s["kind"], s["status"], s["command_tag"], s["sqlstate"]) for s in stmts] == [
        ("transaction", "ok", "BEGIN", None), ("create", "ok", "CREATE TABLE", None),
        ("transaction", "ok", "COMMIT", None),
        ("transaction", "ok", "BEGIN", None), ("insert", "ok", "INSERT 0 1", None),
        ("transaction", "ok", "ROLLBACK", None),
        ("transaction", "ok", "BEGIN", None), ("insert", "ok", "INSERT 0 1", None),
        ("transaction", "ok", "COMMIT", None),
        ("transaction", "ok", "BEGIN", None), ("select", "error", None, "22012"),
        ("select", "error", None, "25P02"), ("transaction", "ok", "ROLLBACK", None),
        ("transaction", "ok", "BEGIN", None), ("select", "ok", "SELECT 1", None),
        ("transaction", "ok", "COMMIT", None),
    ]


def test_psycopg_prepared_statements(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-prepared")
    query = "SELECT email, balance FROM customers WHERE id = %s AND card_number = %s"

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        rows = [conn.execute(query, (i, CARD)).fetchone() for i in range(1, 11)]
        once = conn.execute(f"SELECT name FROM customers WHERE email = '{EMAIL}'", prepare=True).fetchone()
        again = conn.execute(f"SELECT name FROM customers WHERE email = '{EMAIL}'", prepare=True).fetchone()
        # the server holds both statements, prepared once each (prepare_threshold=0: on first use)
        server_side = conn.execute("SELECT statement FROM pg_prepared_statements WHERE statement NOT LIKE %s "
                                   "ORDER BY prepare_time", ("%pg_prepared%",)).fetchall()
        return rows, once, again, server_side

    rows, once, again, server_side = on_both(gateway, upstream, user, scenario, autocommit=True,
                                             prepare_threshold=0)
    assert rows[6] == (EMAIL, Decimal("10.50")) and once == again == ("Customer 7",)
    assert server_side == [(query.replace("%s", "$1", 1).replace("%s", "$2"),),
                           (f"SELECT name FROM customers WHERE email = '{EMAIL}'",)]
    _, stmts = recorded(gateway, user)
    assert len(stmts) == 13
    prepared = stmts[:10]
    assert {(s["text"], s["param_count"], s["protocol"], s["status"], s["row_count"]) for s in prepared} == {
        ("SELECT email, balance FROM customers WHERE id = $1 AND card_number = $2", 2, "extended", "ok", 1)}
    assert [(s["text"], s["param_count"], s["row_count"]) for s in stmts[10:12]] == [
        ("SELECT name FROM customers WHERE email = $1", 0, 1)] * 2
    assert_clean(stmts, CARD, EMAIL)


def test_psycopg_autocommit_switch(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-autocommit")

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        states = []
        conn.autocommit = True
        a = conn.execute("SELECT count(*) FROM customers WHERE active").fetchone()
        states.append(conn.info.transaction_status.name)
        conn.autocommit = False
        b = conn.execute("SELECT count(*) FROM customers WHERE NOT active").fetchone()
        states.append(conn.info.transaction_status.name)
        conn.commit()
        states.append(conn.info.transaction_status.name)
        return a, b, states

    a, b, states = on_both(gateway, upstream, user, scenario)
    assert a == b == (25,) and states == ["IDLE", "INTRANS", "IDLE"]
    _, stmts = recorded(gateway, user)
    assert [(s["kind"], s["command_tag"], s["protocol"]) for s in stmts] == [
        ("select", "SELECT 1", "simple"), ("transaction", "BEGIN", "simple"), ("select", "SELECT 1", "simple"),
        ("transaction", "COMMIT", "simple")]


def test_psycopg_parameter_status_and_notices(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-notices")
    names = ["server_version", "server_encoding", "client_encoding", "DateStyle", "IntervalStyle", "TimeZone",
             "integer_datetimes", "standard_conforming_strings", "application_name", "is_superuser",
             "session_authorization"]

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        notices: list[tuple[str | None, str | None, str | None]] = []
        conn.add_notice_handler(lambda d: notices.append((d.severity, d.sqlstate, d.message_primary)))
        params = {n: conn.info.parameter_status(n) for n in names}
        conn.execute("DO $$ BEGIN RAISE NOTICE 'hello %', 'alice.secret'; RAISE WARNING 'careful'; END $$")
        conn.execute("SET application_name = 'renamed'")
        conn.execute("SET TIME ZONE 'Asia/Tokyo'")
        after = (conn.info.parameter_status("application_name"), conn.info.parameter_status("TimeZone"),
                 conn.execute("SHOW statement_timeout").fetchone())  # startup options reach the server
        return params, notices, after, conn.info.server_version

    params, notices, after, version = on_both(gateway, upstream, user, scenario, groups=DBA, autocommit=True,
                                              application_name="notices", options="-c statement_timeout=4321")
    assert params["server_version"] and params["server_version"].startswith(str(version // 10000))
    assert params["application_name"] == "notices" and params["session_authorization"] == upstream.role
    assert notices == [("NOTICE", "00000", "hello alice.secret"), ("WARNING", "01000", "careful")]
    assert after == ("renamed", "Asia/Tokyo", ("4321ms",))
    _, stmts = recorded(gateway, user)
    assert [(s["kind"], s["status"], s["command_tag"], s["text"]) for s in stmts] == [
        ("do", "ok", "DO", "DO $1"),
        ("set", "ok", "SET", "SET application_name = $1"),
        ("set", "ok", "SET", "SET TIME ZONE $1"),
        ("show", "ok", "SHOW", "SHOW statement_timeout"),
    ]
    assert_clean(stmts, "alice.secret", "renamed")


def test_psycopg_error_at_implicit_commit_is_recorded(gateway: Gateway, upstream: UpstreamDB) -> None:
    """A deferred constraint fails when the implicit transaction commits, after the statement completed.

    In the simple protocol the server commits before CommandComplete, so the ErrorResponse answers the statement.
    In the extended protocol the statement completes ('INSERT 0 2') and the commit fails at Sync: the client gets
    the error and nothing is inserted, so the audit must not leave the insert looking like a plain success.
    """
    user = new_user("psycopg-deferred")

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        conn.execute("CREATE TEMP TABLE d (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
        out = []
        for query, params in [("INSERT INTO d VALUES (1), (1)", None), ("INSERT INTO d VALUES (%s), (%s)", (2, 2))]:
            try:
                conn.execute(query, params)
                out.append("no error")
            except psycopg.Error as exc:
                out.append(exc.sqlstate)
        out.append(conn.execute("SELECT count(*) FROM d").fetchone())
        return out

    assert on_both(gateway, upstream, user, scenario, autocommit=True) == ["23505", "23505", (0,)]
    _, stmts = recorded(gateway, user)
    assert [(s["protocol"], s["kind"]) for s in stmts[:3]] == [
        ("simple", "create"), ("simple", "insert"), ("extended", "insert")]
    assert (stmts[1]["status"], stmts[1]["sqlstate"]) == ("error", "23505")
    assert stmts[-1]["text"] == "SELECT count(*) FROM d" and stmts[-1]["status"] == "ok"
    # the failure the client saw for the extended-protocol insert must be in the audit, on the insert or on a
    # record of its own
    failures = [s for s in stmts if s["sqlstate"] == "23505"]
    assert len(failures) == 2, [(s["seq"], s["protocol"], s["kind"], s["status"], s["command_tag"]) for s in stmts]


def test_psycopg_cancel_through_the_gateway(gateway: Gateway, upstream: UpstreamDB) -> None:
    """conn.cancel() sends a CancelRequest with the gateway's key; the gateway forwards it upstream."""
    user = new_user("psycopg-cancel")

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        timer = threading.Timer(0.3, conn.cancel_safe)
        timer.start()
        try:
            with pytest.raises(errors.QueryCanceled) as exc_info:
                conn.execute("SELECT pg_sleep(%s)", (10,))
        finally:
            timer.cancel()
        return exc_info.value.sqlstate, conn.execute("SELECT 1").fetchone()

    assert on_both(gateway, upstream, user, scenario, autocommit=True) == ("57014", (1,))
    _, stmts = recorded(gateway, user)
    assert [(s["status"], s["sqlstate"]) for s in stmts] == [("error", "57014"), ("ok", None)]
    assert stmts[0]["duration_ms"] < 5000


def test_psycopg_large_results_and_parameters(gateway: Gateway, upstream: UpstreamDB) -> None:
    """Megabytes each way (flow control in the relay), compared by checksum with the direct result."""
    user = new_user("psycopg-large")
    big = "".join(secrets.token_hex(16) for _ in range(65536))  # 4 MiB parameter

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        echoed = conn.execute("SELECT md5(%s), length(%s)", (big, big)).fetchone()
        rows = conn.execute("SELECT i, md5(i::text) || repeat('x', 1000) FROM generate_series(1, %s) AS i",
                            (20000,)).fetchall()
        with conn.cursor(binary=True) as cur:
            blob = cur.execute("SELECT decode(repeat('ab', %s), 'hex')", (3 * 1024 * 1024,)).fetchone()
        return echoed, len(rows), hash(tuple(rows)), len(blob[0]) if blob else None

    echoed, n, _, blob_len = on_both(gateway, upstream, user, scenario, autocommit=True)
    assert echoed[1] == len(big) and n == 20000 and blob_len == 3 * 1024 * 1024
    _, stmts = recorded(gateway, user)
    assert [(s["status"], s["row_count"], s["param_count"]) for s in stmts] == [
        ("ok", 1, 2), ("ok", 20000, 1), ("ok", 1, 1)]
    assert_clean(stmts, big[:64])


def test_psycopg_copy_and_simple_protocol_corners(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-copy")

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        conn.execute("CREATE TEMP TABLE t (id int, email text)")
        with conn.cursor() as cur:
            with cur.copy("COPY t (id, email) FROM STDIN") as copy:
                for i in range(1, 101):
                    copy.write_row((i, f"{i}.{SECRET_EMAIL}"))
            copy_in = cur.rowcount
            with cur.copy("COPY (SELECT id, email FROM t WHERE id <= 3 ORDER BY id) TO STDOUT") as copy:
                copied = list(copy.rows())
            cur.execute("SELECT 1 AS a; SELECT 2 AS b, 3 AS c")  # simple protocol, two results
            results = [cur.fetchall()]
            while cur.nextset():
                results.append(cur.fetchall())
            cur.execute("")
            empty = psycopg.pq.ExecStatus(cur.pgresult.status).name if cur.pgresult else None
            with pytest.raises(errors.SyntaxError):
                cur.execute("SELECT %s; SELECT %s", (1, 2))  # several commands in one prepared statement
        return copy_in, copied, results, empty

    copy_in, copied, results, empty = on_both(gateway, upstream, user, scenario, autocommit=True)
    assert copy_in == 100 and copied == [("1", f"1.{SECRET_EMAIL}"), ("2", f"2.{SECRET_EMAIL}"),
                                         ("3", f"3.{SECRET_EMAIL}")]
    assert results == [[(1,)], [(2, 3)]] and empty == "EMPTY_QUERY"
    _, stmts = recorded(gateway, user)
    got = [(s["kind"], s["status"], s["command_tag"], s["row_count"], s["protocol"]) for s in stmts]
    assert got == [
        ("create", "ok", "CREATE TABLE", 0, "simple"),
        ("copy", "ok", "COPY 100", 100, "simple"),
        ("copy", "ok", "COPY 3", 3, "simple"),
        ("select", "ok", "SELECT 1", 1, "simple"),
        ("select", "ok", "SELECT 1", 1, "simple"),
        ("multiple", "error", None, None, "extended"),
    ], got
    assert stmts[5]["text"] == "SELECT $1; SELECT $2" and stmts[5]["sqlstate"] == "42601"
    assert stmts[5]["param_count"] == 2
    assert_clean(stmts, SECRET_EMAIL)


def test_psycopg_listen_notify(gateway: Gateway, upstream: UpstreamDB) -> None:
    """An asynchronous NotificationResponse arrives between statements and is relayed as it is."""
    user = new_user("psycopg-notify")
    channel = f"ch_{secrets.token_hex(3)}"
    with pg_gateway(gateway, user, autocommit=True) as listener, \
            pg_gateway(gateway, user, autocommit=True) as sender:
        listener.execute(f"LISTEN {channel}")
        sender.execute("SELECT pg_notify(%s, %s)", (channel, "payload-1"))
        sender.execute(f"NOTIFY {channel}, 'payload-2'")
        got = [(n.channel, n.payload) for n in listener.notifies(timeout=5, stop_after=2)]
        assert got == [(channel, "payload-1"), (channel, "payload-2")]
        assert listener.execute("SELECT 1").fetchone() == (1,)
    store = gateway.store()
    sessions = flush_wait(lambda: [s for s in store.sessions(user=user) if s["ended_at"]]
                          if all(s["ended_at"] for s in store.sessions(user=user)) else [])
    assert len(sessions) == 2
    texts = sorted(st["text"] for s in sessions for st in store.statements(s["id"]))
    assert texts == sorted([f"LISTEN {channel}", "SELECT pg_notify($1, $2)", f"NOTIFY {channel}, $1",
                            "SELECT $1"])


# === asyncpg ==================================================================================================


async def a_gateway(gateway: Gateway, user: str, **kw: Any) -> asyncpg.Connection:
    return await asyncpg.connect(host="127.0.0.1", port=gateway.port, user=user, database="app",
                                 password=gateway.token(user), ssl=client_ssl(), **kw)


async def a_direct(upstream: UpstreamDB, **kw: Any) -> asyncpg.Connection:
    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=upstream.role, database=upstream.name,
                                 ssl=False, **kw)


def a_on_both(gateway: Gateway, upstream: UpstreamDB, user: str,
              scenario: Callable[[asyncpg.Connection], Awaitable[Any]], **kw: Any) -> Any:
    async def run(connect: Awaitable[asyncpg.Connection]) -> Any:
        conn = await connect
        try:
            return await scenario(conn)
        finally:
            await conn.close()

    direct = asyncio.run(run(a_direct(upstream, **kw)))
    via = asyncio.run(run(a_gateway(gateway, user, **kw)))
    assert via == direct
    return via


def test_asyncpg_fetch_fetchrow_fetchval(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("asyncpg-fetch")

    async def scenario(conn: asyncpg.Connection) -> Any:
        rows = await conn.fetch(f"SELECT {COLUMNS} FROM customers WHERE id <= $1 ORDER BY id", 10)
        row = await conn.fetchrow("SELECT id, name, balance FROM customers WHERE email = $1", EMAIL)
        val = await conn.fetchval("SELECT count(*) FROM customers WHERE card_number = $1", CARD)
        none = await conn.fetchrow("SELECT id FROM customers WHERE id = $1", 999)
        status = await conn.execute(f"SELECT id FROM customers WHERE email = '{EMAIL}'")
        return [tuple(r) for r in rows], tuple(row), val, none, status

    rows, row, val, none, status = a_on_both(gateway, upstream, user, scenario,
                                             server_settings={"application_name": "asyncpg-app"})
    assert len(rows) == 10 and rows[6][:8] == (7, "Customer 7", EMAIL, CARD, Decimal("10.50"), False,
                                               date(2024, 1, 8), ["t7", "x"])
    assert row == (7, "Customer 7", Decimal("10.50")) and val == 50 and none is None and status == "SELECT 1"
    session, stmts = recorded(gateway, user)
    assert session["application_name"] == "asyncpg-app"
    assert [(s["protocol"], s["kind"], s["status"], s["command_tag"], s["row_count"], s["param_count"])
            for s in stmts] == [
        ("extended", "select", "ok", "SELECT 10", 10, 1),
        # fetchrow/fetchval execute with a row limit of 1: the server suspends the portal after that row
        ("extended", "select", "suspended", "SUSPENDED", 1, 1),
        ("extended", "select", "suspended", "SUSPENDED", 1, 1),
        ("extended", "select", "ok", "SELECT 0", 0, 1),
        ("simple", "select", "ok", "SELECT 1", 1, 0),
    ]
    assert stmts[2]["text"] == "SELECT count(*) FROM customers WHERE card_number = $1"
    assert stmts[4]["text"] == "SELECT id FROM customers WHERE email = $1"
    assert_clean(stmts, EMAIL, CARD)


def test_asyncpg_prepared_statement_executed_many_times(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("asyncpg-prepared")

    async def scenario(conn: asyncpg.Connection) -> Any:
        stmt = await conn.prepare("SELECT email, balance, tags FROM customers WHERE id = $1 AND active = $2")
        got = [await stmt.fetchrow(i, i % 2 == 0) for i in range(1, 21)]
        types = [t.name for t in stmt.get_parameters()]
        return [tuple(r) if r else None for r in got], types

    got, types = a_on_both(gateway, upstream, user, scenario)
    assert types == ["int4", "bool"]
    assert got[0] == ("c1@example.com", Decimal("1.50"), ["t1", "x"]) and len(got) == 20
    _, stmts = recorded(gateway, user)
    assert len(stmts) == 20
    assert {(s["text"], s["param_count"], s["status"], s["row_count"], s["protocol"]) for s in stmts} == {
        ("SELECT email, balance, tags FROM customers WHERE id = $1 AND active = $2", 2, "suspended", 1, "extended")}


def test_asyncpg_executemany_and_transactions(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("asyncpg-tx")
    people = [(i, f"p{i}.{SECRET_EMAIL}") for i in range(1, 11)]

    async def scenario(conn: asyncpg.Connection) -> Any:
        await conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, email text)")
        async with conn.transaction():
            await conn.executemany("INSERT INTO t VALUES ($1, $2)", people)
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.execute("INSERT INTO t VALUES ($1, $2)", 11, SECRET_EMAIL)
                raise RuntimeError("roll back")
        # executemany is atomic: the duplicate in the middle undoes the rows before it
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(20, "a@x.org"), (1, "b@x.org"), (21, "c")])
        async with conn.transaction():
            await conn.execute("INSERT INTO t VALUES ($1, $2)", 30, "thirty@example.com")
            async with conn.transaction():  # a savepoint
                await conn.execute("INSERT INTO t VALUES ($1, $2)", 31, "x@example.com")
        return [tuple(r) for r in await conn.fetch("SELECT id, email FROM t ORDER BY id")]

    rows = a_on_both(gateway, upstream, user, scenario)
    assert rows == [*people, (30, "thirty@example.com"), (31, "x@example.com")]
    _, stmts = recorded(gateway, user)
    got = [(s["kind"], s["status"], s["command_tag"], s["param_count"]) for s in stmts]
    assert got == [
        ("create", "ok", "CREATE TABLE", 0),
        ("transaction", "ok", "BEGIN", 0),
        *[("insert", "ok", "INSERT 0 1", 2)] * 10,
        ("transaction", "ok", "COMMIT", 0),
        ("transaction", "ok", "BEGIN", 0),
        ("insert", "ok", "INSERT 0 1", 2),
        ("transaction", "ok", "ROLLBACK", 0),
        ("insert", "ok", "INSERT 0 1", 2),
        ("insert", "error", None, 2),
        ("insert", "skipped", None, 2),
        ("transaction", "ok", "BEGIN", 0),
        ("insert", "ok", "INSERT 0 1", 2),
        ("transaction", "ok", "SAVEPOINT", 0),
        ("insert", "ok", "INSERT 0 1", 2),
        ("transaction", "ok", "RELEASE", 0),
        ("transaction", "ok", "COMMIT", 0),
        ("select", "ok", "SELECT 12", 0),
    ], got
    assert stmts[17]["sqlstate"] == "23505"
    assert_clean(stmts, SECRET_EMAIL, "thirty@example.com")


def test_asyncpg_type_introspection(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("asyncpg-types")
    suffix = secrets.token_hex(3)
    mood, pair = f"mood_{suffix}", f"pair_{suffix}"
    with upstream.connect(autocommit=True) as admin:
        admin.execute(f"CREATE TYPE {mood} AS ENUM ('sad', 'ok', 'happy')")
        admin.execute(f"CREATE TYPE {pair} AS (a int, b text)")
    try:
        async def scenario(conn: asyncpg.Connection) -> Any:
            m = await conn.fetchval(f"SELECT $1::{mood}", "happy")
            ms = await conn.fetchval(f"SELECT ARRAY['sad', 'ok']::{mood}[]")
            p = await conn.fetchval(f"SELECT ROW(1, 'one')::{pair}")
            inet = await conn.fetchval("SELECT '10.0.0.0/8'::cidr")
            return m, ms, tuple(p), str(inet)

        assert a_on_both(gateway, upstream, user, scenario) == ("happy", ["sad", "ok"], (1, "one"), "10.0.0.0/8")
    finally:
        with upstream.connect(autocommit=True) as admin:
            admin.execute(f"DROP TYPE {mood}, {pair}")
    _, stmts = recorded(gateway, user)
    assert all(s["status"] in ("ok", "suspended") for s in stmts), stmts
    introspection = [s for s in stmts if "pg_catalog.pg_type" in (s["text"] or "")]
    assert introspection, [s["text"] for s in stmts]
    assert all(s["protocol"] == "extended" and s["param_count"] == 1 and s["row_count"] >= 1
               for s in introspection)
    ours = [(s["text"], s["status"], s["row_count"]) for s in stmts
            if "pg_type" not in (s["text"] or "") and "set_config" not in (s["text"] or "")]
    assert ours == [(f"SELECT $1::{mood}", "suspended", 1), (f"SELECT ARRAY[$1, $2]::{mood}[]", "suspended", 1),
                    (f"SELECT ROW($1, $2)::{pair}", "suspended", 1), ("SELECT $1::cidr", "suspended", 1)]


def test_asyncpg_cursor_with_portal_suspension(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("asyncpg-cursor")

    async def scenario(conn: asyncpg.Connection) -> Any:
        async with conn.transaction():
            iterated = [tuple(r) async for r in conn.cursor(
                "SELECT id, email FROM customers WHERE card_number = $1 ORDER BY id", CARD, prefetch=10)]
            cur = await conn.cursor("SELECT id FROM customers WHERE id > $1 ORDER BY id", 0)
            first = [r["id"] for r in await cur.fetch(5)]
            moved = await cur.forward(10)
            nxt = await cur.fetchrow()
            rest = [r["id"] for r in await cur.fetch(100)]
        return iterated, first, moved, nxt["id"], rest

    iterated, first, moved, nxt, rest = a_on_both(gateway, upstream, user, scenario)
    assert [r[0] for r in iterated] == list(range(1, 51)) and iterated[6] == (7, EMAIL)
    assert first == [1, 2, 3, 4, 5] and moved == 10 and nxt == 16 and rest == list(range(17, 51))
    _, stmts = recorded(gateway, user)
    assert stmts[0]["command_tag"] == "BEGIN" and stmts[-1]["command_tag"] == "COMMIT"
    loop = [s for s in stmts if "card_number" in (s["text"] or "")]
    assert [(s["status"], s["row_count"]) for s in loop] == [("suspended", 10)] * 5 + [("ok", 0)]
    assert all(s["param_count"] == 1 and s["command_tag"] in ("SUSPENDED", "SELECT 0") for s in loop)
    explicit = [s for s in stmts if "id > $1" in (s["text"] or "")]
    assert [(s["status"], s["row_count"]) for s in explicit] == [
        ("suspended", 5), ("suspended", 1), ("ok", 34)]
    moves = [s for s in stmts if (s["text"] or "").startswith("MOVE")]
    assert [(s["kind"], s["status"], s["command_tag"], s["protocol"]) for s in moves] == [
        ("fetch", "ok", "MOVE 10", "simple")]
    assert_clean(stmts, CARD)


def test_asyncpg_error_midway(gateway: Gateway, upstream: UpstreamDB) -> None:
    """Errors at execution time: each is recorded with its SQLSTATE and the session carries on."""
    user = new_user("asyncpg-error")

    async def scenario(conn: asyncpg.Connection) -> Any:
        out: list[Any] = [await conn.fetchval("SELECT $1::int * 2", 21)]
        with pytest.raises(asyncpg.DivisionByZeroError):
            await conn.fetch("SELECT id / $1 FROM customers WHERE email = $2", 0, EMAIL)
        with pytest.raises(asyncpg.InvalidTextRepresentationError):  # the bad value is a parameter
            await conn.fetch("SELECT id FROM customers WHERE id = $1::text::int", f"x{CARD}")
        with pytest.raises(asyncpg.DataError):  # refused by asyncpg itself: nothing is executed
            await conn.fetch("SELECT $1::int", "not-a-number")
        async with conn.transaction():
            out.append(await conn.fetchval("SELECT count(*) FROM customers WHERE id <= $1", 5))
            with pytest.raises(asyncpg.DivisionByZeroError):
                await conn.execute("SELECT 1 / 0")
        out.append(await conn.fetchval("SELECT count(*) FROM customers"))
        return out

    assert a_on_both(gateway, upstream, user, scenario) == [42, 5, 50]
    _, stmts = recorded(gateway, user)
    got = [(s["kind"], s["status"], s["sqlstate"], s["protocol"]) for s in stmts]
    assert got == [
        ("select", "suspended", None, "extended"),
        ("select", "error", "22012", "extended"),
        ("select", "error", "22P02", "extended"),
        ("transaction", "ok", None, "simple"),
        ("select", "suspended", None, "extended"),
        ("select", "error", "22012", "simple"),
        ("transaction", "ok", None, "simple"),
        ("select", "suspended", None, "extended"),
    ], got
    assert stmts[6]["command_tag"] == "ROLLBACK"
    assert stmts[2]["error_message"] == 'invalid input syntax for type integer: "…"'
    assert_clean(stmts, EMAIL, CARD)


def test_asyncpg_statement_rejected_at_parse_is_recorded(gateway: Gateway, upstream: UpstreamDB) -> None:
    """asyncpg prepares every statement first (Parse, Describe, Sync) and sends Bind/Execute only if that worked.

    A statement the server rejects at Parse -- a syntax error, an unknown table, a bad literal -- therefore never
    reaches Execute. It was still sent to the database and failed there, so the audit must show it: probing
    for table names must not be invisible.
    """
    user = new_user("asyncpg-parse-error")

    async def scenario(conn: asyncpg.Connection) -> Any:
        out = []
        for query in ["SELEC broken", "SELECT * FROM no_such_table_probe",
                      f"SELECT id FROM customers WHERE id = 'x{CARD}'::int"]:
            try:
                await conn.fetch(query)
            except asyncpg.PostgresError as exc:
                out.append(exc.sqlstate)
        out.append(await conn.fetchval("SELECT count(*) FROM customers"))
        return out

    assert a_on_both(gateway, upstream, user, scenario) == ["42601", "42P01", "22P02", 50]
    _, stmts = recorded(gateway, user)
    assert_clean(stmts, CARD)
    got = [(s["kind"], s["status"], s["sqlstate"], s["text"]) for s in stmts]
    assert got == [
        ("unparsed", "denied", "42601", "SELEC broken"),  # refused at Parse by the policy: it cannot be checked
        ("select", "error", "42P01", "SELECT * FROM no_such_table_probe"),
        ("select", "error", "22P02", "SELECT id FROM customers WHERE id = $1::int"),
        ("select", "suspended", None, "SELECT count(*) FROM customers"),
    ], got


# === pg8000 ===================================================================================================


def test_pg8000_native(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("pg8000-native")

    def scenario(con: pg8000.native.Connection) -> Any:
        out: list[Any] = [con.run(f"SELECT {COLUMNS} FROM customers WHERE id <= :n ORDER BY id", n=3)]
        out.append(con.run("SELECT name FROM customers WHERE email = :e AND card_number = :c", e=EMAIL, c=CARD))
        con.run("CREATE TEMP TABLE t (id int, email text)")
        con.run("INSERT INTO t VALUES (:id, :email)", id=1, email=SECRET_EMAIL)
        out.append(con.row_count)
        ps = con.prepare("SELECT email FROM customers WHERE id = :id")
        out.append([ps.run(id=i) for i in (1, 2, 3)])
        ps.close()
        try:
            con.run("SELECT 1 / :z", z=0)
        except pg8000.native.DatabaseError as exc:
            out.append((exc.args[0]["S"], exc.args[0]["C"], exc.args[0]["M"]))
        out.append(con.run("SELECT email FROM t"))
        return out

    def run(**kw: Any) -> Any:
        con = pg8000.native.Connection(**kw)
        try:
            return scenario(con)
        finally:
            con.close()

    direct = run(user=upstream.role, host=PG_HOST, port=PG_PORT, database=upstream.name)
    via = run(user=user, host="127.0.0.1", port=gateway.port, database="app", password=gateway.token(user),
              ssl_context=client_ssl(), application_name="pg8000-native")
    assert via == direct
    assert via[0][0] == [1, "Customer 1", "c1@example.com", CARD, Decimal("1.50"), False, date(2024, 1, 2),
                         ["t1", "x"], {"n": 1, "k": "v1"}]
    assert via[1] == [["Customer 7"]] and via[2] == 1
    assert via[3] == [[["c1@example.com"]], [["c2@example.com"]], [["c3@example.com"]]]
    assert via[4] == ("ERROR", "22012", "division by zero") and via[5] == [[SECRET_EMAIL]]
    session, stmts = recorded(gateway, user)
    assert session["application_name"] == "pg8000-native"
    assert [(s["kind"], s["status"], s["param_count"], s["row_count"]) for s in stmts] == [
        ("select", "ok", 1, 3), ("select", "ok", 2, 1), ("create", "ok", 0, 0), ("insert", "ok", 2, 1),
        ("select", "ok", 1, 1), ("select", "ok", 1, 1), ("select", "ok", 1, 1), ("select", "error", 1, None),
        ("select", "ok", 0, 1)]
    # pg8000 sends statements without parameters in the simple protocol
    assert [s["protocol"] for s in stmts] == ["extended"] * 2 + ["simple"] + ["extended"] * 5 + ["simple"]
    assert stmts[1]["text"] == "SELECT name FROM customers WHERE email = $1 AND card_number = $2"
    assert stmts[7]["sqlstate"] == "22012"
    assert_clean(stmts, EMAIL, CARD, SECRET_EMAIL)


def test_pg8000_dbapi(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("pg8000-dbapi")

    def scenario(conn: Any) -> Any:
        cur = conn.cursor()
        cur.execute("SELECT id, email, balance FROM customers WHERE email = %s OR id = %s ORDER BY id", (EMAIL, 1))
        out: list[Any] = [[list(r) for r in cur.fetchall()], [d[0] for d in cur.description]]
        cur.execute("CREATE TEMP TABLE t (id int, card text)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(1, CARD), (2, CARD[::-1])])
        conn.commit()
        cur.execute("INSERT INTO t VALUES (%s, %s)", (3, "nope"))
        conn.rollback()
        cur.execute("SELECT count(*) FROM t")
        out.append(list(cur.fetchone()))
        try:
            cur.execute("SELECT 1 / %s", (0,))
        except pg8000.dbapi.DatabaseError as exc:
            out.append(exc.args[0]["C"])
        conn.rollback()
        conn.autocommit = True
        cur.execute("SELECT %s::text", (SECRET_EMAIL,))
        out.append(list(cur.fetchone()))
        return out

    def run(**kw: Any) -> Any:
        conn = pg8000.dbapi.connect(**kw)
        try:
            return scenario(conn)
        finally:
            conn.close()

    direct = run(user=upstream.role, host=PG_HOST, port=PG_PORT, database=upstream.name)
    via = run(user=user, host="127.0.0.1", port=gateway.port, database="app", password=gateway.token(user),
              ssl_context=client_ssl())
    assert via == direct
    assert via[0] == [[1, "c1@example.com", Decimal("1.50")], [7, EMAIL, Decimal("10.50")]]
    assert via[1] == ["id", "email", "balance"] and via[2] == [2] and via[3] == "22012" and via[4] == [SECRET_EMAIL]
    _, stmts = recorded(gateway, user)
    got = [(s["kind"], s["status"], s["command_tag"]) for s in stmts]
    assert got == [
        ("transaction", "ok", "BEGIN"), ("select", "ok", "SELECT 2"), ("create", "ok", "CREATE TABLE"),
        ("insert", "ok", "INSERT 0 1"), ("insert", "ok", "INSERT 0 1"), ("transaction", "ok", "COMMIT"),
        ("transaction", "ok", "BEGIN"), ("insert", "ok", "INSERT 0 1"), ("transaction", "ok", "ROLLBACK"),
        ("transaction", "ok", "BEGIN"), ("select", "ok", "SELECT 1"), ("select", "error", None),
        ("transaction", "ok", "ROLLBACK"), ("select", "ok", "SELECT 1"),
    ], got
    assert stmts[1]["text"] == "SELECT id, email, balance FROM customers WHERE email = $1 OR id = $2 ORDER BY id"
    assert stmts[1]["param_count"] == 2 and stmts[3]["param_count"] == 2
    assert_clean(stmts, EMAIL, CARD, CARD[::-1], SECRET_EMAIL)


# === many clients at once =====================================================================================


def test_twenty_concurrent_psycopg_connections(gateway: Gateway, upstream: UpstreamDB) -> None:
    """20 sessions at once through one gateway, 50 queries each; every answer and every record in its place.

    Each query returns a different number of rows, so a row count or a statement credited to the wrong session
    (or the wrong statement of a session) shows up in the store.
    """
    user = new_user("concurrent")
    token = gateway.token(user)
    query = "SELECT id, email, balance, tags FROM customers WHERE id <= %s ORDER BY id"
    with upstream.connect() as conn:
        expected = conn.execute("SELECT id, email, balance, tags FROM customers ORDER BY id").fetchall()
    barrier = threading.Barrier(20, timeout=30)

    def sizes(i: int) -> list[int]:
        return [(i * 7 + j) % 50 + 1 for j in range(50)]

    def worker(i: int) -> int:
        ok = 0
        with psycopg.connect(gateway.dsn(user, token), autocommit=True, application_name=f"worker-{i}") as conn:
            barrier.wait()
            for n in sizes(i):
                rows = conn.execute(query, (n,)).fetchall()
                assert rows == expected[:n], (i, n)
                ok += 1
        return ok

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert list(pool.map(worker, range(20))) == [50] * 20
    store = gateway.store()

    def complete() -> list[dict[str, Any]]:
        rows = [s for s in store.sessions(user=user) if s["ended_at"] and s["statements"] >= 50]
        return rows if len(rows) == 20 else []

    sessions = flush_wait(complete, timeout=20)
    assert len(sessions) == 20, store.sessions(user=user)
    by_app = {s["application_name"]: s for s in sessions}
    assert sorted(by_app) == sorted(f"worker-{i}" for i in range(20))
    for i in range(20):
        s = by_app[f"worker-{i}"]
        assert s["end_reason"] == "client terminated"
        stmts = store.statements(s["id"])
        assert [st["seq"] for st in stmts] == list(range(1, 51))
        assert {(st["text"], st["status"], st["param_count"], st["protocol"]) for st in stmts} == {
            ("SELECT id, email, balance, tags FROM customers WHERE id <= $1 ORDER BY id", "ok", 1, "extended")}
        assert [st["row_count"] for st in stmts] == sizes(i)
        assert [st["command_tag"] for st in stmts] == [f"SELECT {n}" for n in sizes(i)]
