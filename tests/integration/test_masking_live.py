"""Result masking through a live gateway: psycopg (text), asyncpg (binary), psql; every way data leaves.

The module's tables live in the shared upstream database under names of their own (m_*).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.conftest import Gateway, UpstreamDB, flush_wait, recorded, run_gateway, unique, unverified_tls

KEY = secrets.token_hex(24)
MASKING = {
    "hash_key": "env:WG_TEST_MASK_KEY",
    "rules": [
        {"name": "customer-pii", "columns": ["m_customers.email", "m_customers.card", "*.pin", "m_secrets.token"],
         "detect": ["all"], "style": "partial", "exempt_groups": ["support-leads"]},
        {"name": "hashed", "columns": ["m_hashed.email"], "style": "hash", "groups": ["analysts"]},
    ],
}
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with upstream.connect(autocommit=True) as conn:
        conn.execute("""CREATE TABLE IF NOT EXISTS m_customers (id int PRIMARY KEY, name text, email text UNIQUE,
                        card varchar(40), pin int, amount numeric(10,2), notes text, profile jsonb)""")
        conn.execute("TRUNCATE m_customers")
        conn.execute(
            "INSERT INTO m_customers VALUES (1, 'Jane Doe', %s, %s, 1234, 12.50, "
            "'call +1 555 123 4567 or write jane@work.example.org', '{\"mail\": \"jd@example.net\", \"n\": 1}'),"
            "(2, 'Zoë Ünïcødé', 'zoë@exämple.de', '5555-5555-5555-4444', 9876, 7.25, 'ok ✓ zoë@exämple.de ✓', "
            "'{\"n\": 2}')",
            (EMAIL, CARD),
        )
        conn.execute("CREATE OR REPLACE VIEW m_contacts AS SELECT id, email AS contact, lower(name) AS who "
                     "FROM m_customers")
        conn.execute("CREATE TABLE IF NOT EXISTS m_secrets (id int, token text)")
        conn.execute("TRUNCATE m_secrets")
        conn.execute("INSERT INTO m_secrets VALUES (1, 'opensesame')")
        conn.execute("CREATE TABLE IF NOT EXISTS m_hashed (id int, email text)")
        conn.execute("TRUNCATE m_hashed")
        conn.execute("INSERT INTO m_hashed VALUES (1, 'a@example.com'), (2, 'a@example.com'), (3, 'b@example.com')")
    env = {"WG_TEST_MASK_KEY": KEY}
    with run_gateway(tmp_path_factory.mktemp("masking"), upstream, extra={"masking": MASKING}, env=env) as g:
        yield g


def connect(gw: Gateway, user: str, groups: str = "eng", **kw: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(user, gw.token(user, groups)), **kw)


def masked_counts(stmt: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    return {(m["rule"], m["column"], m["detector"]): m["values"] for m in json.loads(stmt["masked"] or "[]")}


def test_select_star_masks_marked_columns_and_detected_values(gw: Gateway) -> None:
    user = unique("star")
    with connect(gw, user) as conn:
        rows = conn.execute("SELECT * FROM m_customers ORDER BY id").fetchall()
    jane, zoe = rows
    assert jane[0] == 1 and jane[1] == "Jane Doe" and str(jane[5]) == "12.50"  # not sensitive: untouched
    assert jane[2] == "j*******@*******.com"  # a marked column, partial: the shape of an address
    assert jane[3] == "**** **** **** 1111"
    assert jane[4] is None  # a marked int column: a mask cannot be an int, so NULL
    assert jane[6] == "call +* *** *** **67 or write j***@************.org"
    assert jane[7] == {"mail": "j*@*******.net", "n": 1}  # JSON stays JSON
    assert zoe[2] == "z***@********.de" and zoe[3] == "****-****-****-4444"
    assert zoe[6] == "ok ✓ z***@********.de ✓"  # multi-byte characters around and inside a match
    _, stmts = recorded(gw, user)
    counts = masked_counts(next(s for s in stmts if s["kind"] == "select"))
    assert counts[("customer-pii", "public.m_customers.email", "column")] == 2
    assert counts[("customer-pii", "public.m_customers.pin", "column:null")] == 2
    assert counts[("customer-pii", "public.m_customers.notes", "email")] == 2
    assert counts[("customer-pii", "public.m_customers.notes", "phone")] == 1


def test_aliases_views_and_expressions(gw: Gateway) -> None:
    user = unique("alias")
    with connect(gw, user) as conn:
        assert conn.execute("SELECT email AS contact FROM m_customers WHERE id = 1").fetchone() == (
            "j*******@*******.com",)
        assert conn.execute("SELECT contact, who FROM m_contacts WHERE id = 1").fetchone() == (
            "j*******@*******.com", "jane doe")
        assert conn.execute("SELECT email || '' FROM m_customers WHERE id = 1").fetchone() == (
            "j*******@*******.com",)
        (doc,) = conn.execute("SELECT row_to_json(c) FROM m_customers c WHERE id = 1").fetchone()
        assert doc["email"] == "j*******@*******.com" and doc["name"] == "Jane Doe" and doc["id"] == 1
        assert doc["card"] == "**** **** **** 1111"
        (arr,) = conn.execute("SELECT array_agg(email ORDER BY id) FROM m_customers").fetchone()
        assert arr == ["j*******@*******.com", "z***@********.de"]
        assert conn.execute("SELECT token FROM m_secrets").fetchone() == ("o********e",)


def test_asyncpg_binary_format(gw: Gateway) -> None:
    user = unique("apg")
    token = gw.token(user)

    async def go() -> list[Any]:
        ctx = unverified_tls()
        conn = await asyncpg.connect(host="127.0.0.1", port=gw.port, user=user, password=token, database="app",
                                     ssl=ctx)
        try:
            rows = await conn.fetch("SELECT id, email, card, pin, amount, notes, profile FROM m_customers "
                                    "WHERE id = $1", 1)
            again = await conn.fetch("SELECT id, email, card, pin, amount, notes, profile FROM m_customers "
                                     "WHERE id = $1", 1)  # the prepared statement again: Bind/Execute only
            arr = await conn.fetchval("SELECT array_agg(email) FROM m_customers WHERE id = 1")
            return [rows[0], again[0], arr]
        finally:
            await conn.close()

    first, second, arr = asyncio.run(go())
    for row in (first, second):
        assert row["id"] == 1 and str(row["amount"]) == "12.50"
        assert row["email"] == "j*******@*******.com" and row["card"] == "**** **** **** 1111"
        assert row["pin"] is None
        assert row["notes"] == "call +* *** *** **67 or write j***@************.org"
        assert json.loads(row["profile"]) == {"mail": "j*@*******.net", "n": 1}  # jsonb in binary
    assert arr is None  # a binary array holding a match: its layout cannot take a mask, so NULL


def test_psql(gw: Gateway) -> None:
    user = unique("psql")
    env = {**os.environ, "PGPASSWORD": gw.token(user), "PGSSLMODE": "require"}
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(gw.port), "-U", user, "-d", "app", "-AtX", "-c",
                          "SELECT email, card FROM m_customers ORDER BY id"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["j*******@*******.com|**** **** **** 1111",
                                       "z***@********.de|****-****-****-4444"]


def test_copy_of_a_marked_table_is_refused_and_other_copies_are_scanned(gw: Gateway) -> None:
    user = unique("copy")
    with connect(gw, user, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err, conn.cursor().copy(
            "COPY m_customers TO STDOUT"
        ) as cp:
            list(cp)
        assert 'rule "customer-pii"' in str(err.value)
        with conn.cursor().copy("COPY (SELECT 'mail me: ' || 'x@example.org', 42) TO STDOUT (FORMAT csv)") as cp:
            data = b"".join(bytes(b) for b in cp)
        assert data == b"mail me: x@*******.org,42\n"


def test_error_detail_and_notification_payload_are_masked(gw: Gateway) -> None:
    user = unique("err")
    with connect(gw, user, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation) as err:
            conn.execute("INSERT INTO m_customers (id, email) VALUES (99, %s)", (EMAIL,))
        detail = err.value.diag.message_detail or ""
        assert EMAIL not in detail and "j*******@*******.com" in detail
        conn.execute("LISTEN m_chan")
        conn.execute("NOTIFY m_chan, 'customer jane.doe@example.com changed'")
        note = next(conn.notifies(timeout=5))
        assert note.payload == "customer j*******@*******.com changed"
    _, stmts = recorded(gw, user)
    assert EMAIL not in json.dumps(stmts, default=str)


def test_exempt_group_sees_values_and_the_exemption_is_recorded(gw: Gateway) -> None:
    user = unique("lead")
    with connect(gw, user, "eng,support-leads") as conn:
        assert conn.execute("SELECT email FROM m_customers WHERE id = 1").fetchone() == (EMAIL,)
    s, stmts = recorded(gw, user)
    assert json.loads(s["masking"]) == {"rules": [], "exempt": ["customer-pii"]}
    assert all(st["masked"] is None for st in stmts)
    events = gw.store().events(kind="masking_exempt")
    assert any(e["subject"] == user for e in events)


def test_hash_style_is_deterministic_and_keyed(gw: Gateway) -> None:
    user = unique("hash")
    with connect(gw, user, "analysts") as conn:
        rows = conn.execute("SELECT email FROM m_hashed ORDER BY id").fetchall()
    a1, a2, b = (r[0] for r in rows)
    assert a1 == a2 != b and a1.startswith("h:") and len(a1) == 18


def test_rows_split_across_reads_and_prepared_statements(gw: Gateway) -> None:
    user = unique("big")
    with connect(gw, user) as conn:
        cur = conn.execute("SELECT i, 'user' || i || '@example.com' AS e, 'plain ' || i "
                           "FROM generate_series(1, 20000) i")
        rows = cur.fetchall()
        assert len(rows) == 20000
        assert all(e.endswith(".com") and "@" in e and e[1] == "*" for _, e, _ in rows), rows[:3]
        assert rows[41][2] == "plain 42"
        for _ in range(6):  # psycopg prepares the statement from its 5th execution: Bind/Execute only
            assert conn.execute("SELECT email FROM m_customers WHERE id = %s", (1,)).fetchone() == (
                "j*******@*******.com",)


def test_ddl_through_the_gateway_refreshes_column_names(gw: Gateway) -> None:
    user = unique("ddl")
    with connect(gw, user, "eng,dba", autocommit=True) as conn:
        table = unique("m_ddl")
        conn.execute(f"CREATE TABLE {table} (id int, pin text)")
        conn.execute(f"INSERT INTO {table} VALUES (1, '424242')")
        assert conn.execute(f"SELECT pin FROM {table}").fetchone() == ("4****2",)
        conn.execute(f"ALTER TABLE {table} RENAME COLUMN pin TO code")
        assert conn.execute(f"SELECT code FROM {table}").fetchone() == ("424242",)
        conn.execute(f"ALTER TABLE {table} RENAME COLUMN code TO pin")
        assert conn.execute(f"SELECT pin AS x FROM {table}").fetchone() == ("4****2",)
        conn.execute(f"DROP TABLE {table}")


def test_audit_store_never_holds_a_masked_value(gw: Gateway, tmp_path: Path) -> None:
    user = unique("leak")
    with connect(gw, user) as conn:
        conn.execute("SELECT * FROM m_customers").fetchall()
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute("SELECT 'jane.doe@example.com'::int")
    _, stmts = recorded(gw, user)
    assert EMAIL not in json.dumps(stmts, default=str)
    db = Path(gw.store_url.removeprefix("sqlite:///"))
    assert EMAIL.encode() not in db.read_bytes()


def test_policy_check_shows_masked_columns(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_TEST_MASK_KEY", KEY)
    out = gw.cli("policy", "check", "--connection", "app", "--groups", "eng", "--sql",
                 "SELECT c.*, c.email || '' AS shout FROM m_contacts v JOIN m_customers c USING (id)").stdout
    assert "email: masked (partial), from public.m_customers.email by rule customer-pii" in out
    assert "pin: NULL (its type cannot hold a mask), from public.m_customers.pin by rule customer-pii" in out
    assert "name, notes, profile, shout" in out  # scanned by the detectors
    lead = gw.cli("policy", "check", "--connection", "app", "--groups", "support-leads", "--json", "--sql",
                  "SELECT email FROM m_customers").stdout
    assert json.loads(lead)["masking"] == {"rules": [], "exempt": ["customer-pii"]}
    bad = gw.cli("policy", "check", "--connection", "app", "--sql", "SELECT nope FROM m_customers").stdout
    assert 'column "nope" does not exist' in bad


def test_a_catalog_that_cannot_be_read_ends_the_session(tmp_path: Path) -> None:
    """Fail closed: the upstream role may hold one connection, the session's own, so the gateway's catalog
    lookup is refused; rather than relay rows whose columns it cannot name, the gateway ends the session."""
    from psycopg import sql

    from tests.conftest import ADMIN_DSN

    db = UpstreamDB(unique("wgt_onecon"), unique("wgt_onecon"))
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 1").format(sql.Identifier(db.role)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db.name),
                                                                    sql.Identifier(db.role)))
    try:
        with db.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE m_customers (id int, email text)")
            conn.execute("INSERT INTO m_customers VALUES (1, 'a@example.com')")
        env = {"WG_TEST_MASK_KEY": KEY}
        with run_gateway(tmp_path / "gw", db, extra={"masking": MASKING}, env=env) as g:
            user = unique("closed")
            with connect(g, user, autocommit=True) as conn:
                with pytest.raises(psycopg.OperationalError) as err:
                    conn.execute("SELECT * FROM m_customers").fetchall()
                assert "cannot tell which columns to mask" in str(err.value)
                assert "a@example.com" not in str(err.value)
            store = g.store()
            s = flush_wait(lambda: [r for r in store.sessions(user=user) if r["ended_at"]])
            assert s and s[0]["end_reason"] == "catalog unavailable"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(db.role)))


def test_sessions_show_lists_what_was_masked(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_TEST_MASK_KEY", KEY)
    user = unique("show")
    with connect(gw, user) as conn:
        conn.execute("SELECT email, notes FROM m_customers ORDER BY id").fetchall()
    s, _ = recorded(gw, user)
    out = gw.cli("sessions", "show", s["id"]).stdout
    assert "masking     rules: customer-pii" in out
    assert "email 2, notes:email 2, notes:phone 1" in out
