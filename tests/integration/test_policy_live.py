"""Policy decisions on a live gateway: refusals keep the session and its transaction state exactly as a server
error would; startup-packet settings are decided like SET; a review nobody decides expires with a clear error.

The statement corpus (test_policy_corpus.py) covers what is decided; this file covers how a decision meets the
protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg import pq

from tests.conftest import Gateway, UpstreamDB, flush_wait, recorded, run_gateway, unique

RULES = [
    {"name": "orders-need-review", "action": "review", "when": {"kinds": ["update", "delete"], "tables": ["orders"]},
     "reason": "orders are money", "review": {"approvers": ["sre"], "expires_after": "1s", "notice_interval": "1s"}},
]


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with upstream.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, amount int)")
        # other test modules share the table: the rows this one reads are set, not assumed
        conn.execute("INSERT INTO orders VALUES (1, 10), (2, 20) "
                     "ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount")
    with run_gateway(tmp_path_factory.mktemp("policy-live"), upstream, extra={"rules": RULES}) as g:
        yield g


def connect(gw: Gateway, user: str, **kw: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(user, gw.token(user)), **kw)


def test_refusal_in_a_transaction_leaves_it_failed_as_a_server_error_would(gw: Gateway) -> None:
    user = unique("tx")
    with connect(gw, user) as conn:
        conn.execute("INSERT INTO orders VALUES (100, 1)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
            conn.execute("TRUNCATE orders")
        assert 'rule "no-truncate"' in str(err.value)
        assert err.value.diag.message_hint and "nothing of the message ran" in err.value.diag.message_hint
        assert conn.info.transaction_status == pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM orders WHERE id = 100").fetchone() == (0,)
        assert conn.info.transaction_status == pq.TransactionStatus.INTRANS
    _, stmts = recorded(gw, user)
    assert [(s["kind"], s["status"], s["decision"], s["rule"]) for s in stmts] == [
        ("transaction", "ok", "allow", "default"),  # psycopg's BEGIN
        ("insert", "ok", "allow", "default"),
        ("truncate", "denied", "deny", "no-truncate"),
        ("select", "error", "allow", "default"),  # the server refused it: the transaction had failed
        ("transaction", "ok", "allow", "default"),  # ROLLBACK
        ("transaction", "ok", "allow", "default"),  # BEGIN
        ("select", "ok", "allow", "default"),
        ("transaction", "ok", "allow", "default"),  # psycopg's COMMIT on leaving the with block
    ]
    denied = next(s for s in stmts if s["status"] == "denied")
    assert denied["reason"] == "TRUNCATE removes every row of a table" and denied["sqlstate"] == "42501"


def test_refused_at_parse_the_statement_never_exists_and_its_name_is_free(gw: Gateway) -> None:
    """psycopg prepares a statement by name after a few executions; a refused Parse creates nothing."""
    user = unique("parse")
    with connect(gw, user, autocommit=True) as conn:
        for _ in range(2):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match='rule "no-delete-without-where"'):
                conn.execute("DELETE FROM orders", prepare=True)
            assert conn.execute("SELECT 1", prepare=True).fetchone() == (1,)
        cur = conn.cursor(binary=True)  # extended protocol, unnamed statement
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match='rule "no-role-changes"'):
            cur.execute("SET ROLE postgres")
        assert conn.execute("SELECT current_user = session_user").fetchone() == (True,)
    _, stmts = recorded(gw, user)
    assert [(s["protocol"], s["status"], s["rule"]) for s in stmts if s["status"] == "denied"] == [
        ("extended", "denied", "no-delete-without-where")] * 2 + [("extended", "denied", "no-role-changes")]


def test_a_statement_nested_too_deeply_to_analyse_is_refused_by_rule_and_the_session_goes_on(gw: Gateway) -> None:
    """600 chained || make a parse tree deeper than Python's recursion limit: the statement is refused as
    unparsed (not an internal error that ends the session), in both protocols, and the session keeps working."""
    user = unique("deep")
    deep = "SELECT " + " || ".join(["'a'"] * 600)
    with connect(gw, user, autocommit=True) as conn:
        for binary in (False, True):  # simple protocol, then extended
            with pytest.raises(psycopg.errors.SyntaxError, match='rule "unparsed-statement"') as err:
                conn.cursor(binary=binary).execute(deep)
            assert "nests expressions too deeply" in str(err.value)
            assert conn.execute("SELECT 1").fetchone() == (1,)
    _, stmts = recorded(gw, user)
    assert [(s["kind"], s["status"], s["rule"]) for s in stmts if s["status"] == "denied"] == [
        ("unparsed", "denied", "unparsed-statement")] * 2


def test_review_holds_and_an_undecided_request_expires_with_a_clear_error(gw: Gateway) -> None:
    """Approvals are test_reviews_live.py's; here: what a review nobody decides looks like to the client."""
    user = unique("review")
    with connect(gw, user, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.QueryCanceled) as err:
            conn.execute("UPDATE orders SET amount = 0 WHERE id = 1")
        message = str(err.value)
        assert 'rule "orders-need-review") expired: nobody decided within 1s' in message, message
        assert err.value.diag.message_hint == "ask 1 approval from: sre, then run it again"
        assert conn.execute("SELECT amount FROM orders WHERE id = 1").fetchone() == (10,)
    _, stmts = recorded(gw, user)
    assert [(s["status"], s["decision"], s["rule"], s["sqlstate"]) for s in stmts] == [
        ("denied", "review", "orders-need-review", "57014"),
        ("ok", "allow", "default", None),
    ]
    assert stmts[0]["reason"].startswith("review ") and stmts[0]["reason"].endswith(" expired")


def test_startup_settings_are_decided_like_set(gw: Gateway) -> None:
    user = unique("startup")
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(gw.dsn(user, gw.token(user), options="-c role=postgres")).close()
    assert 'rule "no-role-changes"' in str(err.value) and "startup parameter role" in str(err.value)

    async def asyncpg_role() -> str:
        try:
            conn = await asyncpg.connect(host="127.0.0.1", port=gw.port, user=user, password=gw.token(user),
                                         database="app", ssl="require",
                                         server_settings={"session_authorization": "postgres"})
        except asyncpg.PostgresError as exc:
            return f"{exc.sqlstate} {exc}"
        await conn.close()
        return "connected"

    got = asyncio.run(asyncpg_role())
    assert got.startswith("42501") and 'rule "no-role-changes"' in got
    with pytest.raises(psycopg.OperationalError, match="not a setting"):
        psycopg.connect(gw.dsn(user, gw.token(user), options="-B 1000")).close()
    with psycopg.connect(gw.dsn(user, gw.token(user), options=r"-c search_path=public\\ ,pg_catalog")) as conn:
        assert conn.execute("SHOW search_path").fetchone() == ("public ,pg_catalog",)

    def ended() -> list[str] | None:
        reasons = [str(s["end_reason"]) for s in gw.store().sessions(limit=50, user=user) if s["ended_at"]]
        return reasons if len(reasons) == 4 else None

    reasons = flush_wait(ended)
    assert sum("no-role-changes" in r for r in reasons) == 2 and sum("not a setting" in r for r in reasons) == 1
    refused = [s for s in gw.store().sessions(limit=50, user=user) if "no-role-changes" in str(s["end_reason"])]
    texts = sorted(st["text"] for r in refused for st in gw.store().statements(r["id"]))
    assert texts == ["SET role = $1", "SET session_authorization = $1"]  # recorded, the role name redacted


def test_read_only_connection(upstream: UpstreamDB, tmp_path: Path) -> None:
    """Refused by the gateway when the text shows a write; refused by the server (the upstream session runs with
    default_transaction_read_only = on) when it does not, e.g. a function that writes."""
    with upstream.connect(autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE FUNCTION ro_writer() RETURNS int LANGUAGE sql "
                     "AS $$ INSERT INTO orders VALUES (77, 7) RETURNING id $$")
    with run_gateway(tmp_path, upstream, connection={"read_only": True}) as g:
        user = unique("ro")
        with connect(g, user, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone() is not None
            for sql in ["INSERT INTO orders VALUES (7, 7)", "SELECT * FROM orders FOR UPDATE",
                        "CREATE TABLE ro_x (a int)", "SELECT setval('x', 1)", "BEGIN READ WRITE",
                        "SET default_transaction_read_only = off", "SET SESSION CHARACTERISTICS AS TRANSACTION "
                        "READ WRITE", "SELECT set_config('default_transaction_read_only', 'off', false)"]:
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match='rule "read-only"'):
                    conn.execute(sql)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("SELECT ro_writer()")  # the gateway cannot see inside: the server refuses
            conn.execute("SET search_path = public")
            conn.execute("RESET ALL")
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            conn.execute("BEGIN READ ONLY")
            conn.execute("COMMIT")
        with pytest.raises(psycopg.OperationalError, match='rule "read-only"'):
            psycopg.connect(g.dsn(user, g.token(user), options="-c default_transaction_read_only=off")).close()
    with upstream.connect(autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE id = 77").fetchone() == (0,)


def test_statements_are_refused_while_strings_would_be_read_differently(gw: Gateway) -> None:
    """With standard_conforming_strings off, 'a\\', '...' ends a string where the gateway's lexer (and the
    server, with it on) does not: a statement could hide inside what the gateway reads as a string."""
    user = unique("scs")
    smuggle = "SELECT '\\', '; SELECT 1 AS hidden; --'"
    with connect(gw, user, autocommit=True) as conn:
        conn.execute("SET standard_conforming_strings = off")
        for sql in [smuggle, "SELECT 1", "SET standard_conforming_strings = on; SELECT 1"]:
            with pytest.raises(psycopg.errors.FeatureNotSupported, match="standard_conforming_strings is off"):
                conn.execute(sql)
        conn.execute("SET standard_conforming_strings = on")
        assert conn.execute(smuggle).fetchone() == ("\\", "; SELECT 1 AS hidden; --")
        conn.execute("SET client_encoding = 'LATIN1'")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="client encoding is LATIN1"):
            conn.execute("SELECT 1")
        conn.execute("RESET ALL")
        assert conn.execute("SELECT 2").fetchone() == (2,)
    # the same when the setting comes with the startup packet
    with psycopg.connect(gw.dsn(user, gw.token(user), options="-c standard_conforming_strings=off"),
                         autocommit=True) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SELECT 1")
        conn.execute("RESET standard_conforming_strings")  # allowed, but back to the session's default: off
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SELECT 1")
        conn.execute("SET standard_conforming_strings = on")
        assert conn.execute("SELECT 3").fetchone() == (3,)
    stmts = [s for sid in _session_ids(gw, user) for s in gw.store().statements(sid)]
    denied = [s for s in stmts if s["status"] == "denied"]
    assert {s["rule"] for s in denied} == {"unreadable-session"} and len(denied) == 6


def _session_ids(gw: Gateway, user: str) -> list[str]:
    def ended() -> list[str] | None:
        rows = gw.store().sessions(limit=10, user=user)
        return [r["id"] for r in rows] if rows and all(r["ended_at"] for r in rows) and len(rows) == 2 else None

    return flush_wait(ended) or []


def test_refusal_inside_a_pipeline_aborts_only_its_batch(gw: Gateway) -> None:
    """psycopg's pipeline mode sends many statements before one Sync: a refusal aborts the rest of that batch,
    as a server error would, and the next batch runs; the audit has exactly what ran and what was refused."""
    user = unique("pipeline")
    with connect(gw, user, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match='rule "no-truncate"'), conn.pipeline() as p:
            first = conn.execute("SELECT 1")
            conn.execute("TRUNCATE orders")
            conn.execute("SELECT 2")
            p.sync()
        assert first.fetchone() == (1,)  # ran before the refusal
        with conn.pipeline() as p:
            third = conn.execute("SELECT 3")
            count = conn.execute("SELECT count(*) FROM orders WHERE id <= 2")
            p.sync()
            assert (third.fetchone(), count.fetchone()) == ((3,), (2,))
    _, stmts = recorded(gw, user)
    assert [(s["text"], s["status"], s["rule"]) for s in stmts] == [
        ("SELECT $1", "ok", "default"),
        ("TRUNCATE orders", "denied", "no-truncate"),  # refused at its Parse; the server skipped the rest
        ("SELECT $1", "skipped", "default"),  # SELECT 2: sent, never run
        ("SELECT $1", "ok", "default"),  # SELECT 3, the next batch
        ("SELECT count(*) FROM orders WHERE id <= $1", "ok", "default"),
    ]
