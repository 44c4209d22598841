"""The real psql binary through the gateway: what it prints must be what it prints on a direct connection.

Every test runs the same psql invocation twice, once against the upstream directly and once through the
gateway, compares stdout, stderr and the exit code, and then reads the audit store: one session for a user of
its own, one statement row per statement sent, redacted text and the right outcome.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from typing import Any

from tests.conftest import PG_HOST, PG_PORT, Gateway, UpstreamDB, recorded

PSQL = "/usr/bin/psql"
EMAIL = "c7@example.com"
CARD = "4111111111111111"


@dataclass(frozen=True)
class Run:
    rc: int
    out: str
    err: str


def new_user(prefix: str = "psql") -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def _psql(env: dict[str, str], args: list[str], stdin: str | None) -> Run:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    full_env = {**base_env, "LC_ALL": "C.UTF-8", "PSQLRC": "/dev/null", "PAGER": "", "TZ": "UTC", **env}
    res = subprocess.run([PSQL, "-X", "-P", "pager=off", *args], env=full_env, input=stdin,
                         capture_output=True, text=True, timeout=30)
    return Run(res.returncode, res.stdout, res.stderr)


def psql_direct(upstream: UpstreamDB, *args: str, stdin: str | None = None) -> Run:
    return _psql({"PGHOST": PG_HOST, "PGPORT": str(PG_PORT), "PGUSER": upstream.role,
                  "PGDATABASE": upstream.name, "PGSSLMODE": "disable"}, list(args), stdin)


def psql_gateway(gateway: Gateway, user: str, *args: str, stdin: str | None = None,
                 appname: str | None = None) -> Run:
    env = {"PGHOST": "127.0.0.1", "PGPORT": str(gateway.port), "PGUSER": user, "PGDATABASE": "app",
           "PGSSLMODE": "require", "PGPASSWORD": gateway.token(user)}
    if appname is not None:
        env["PGAPPNAME"] = appname
    return _psql(env, list(args), stdin)


def both(gateway: Gateway, upstream: UpstreamDB, user: str, *args: str, stdin: str | None = None) -> Run:
    """Run psql directly and through the gateway; assert they agree exactly and return the gateway's run."""
    direct = psql_direct(upstream, *args, stdin=stdin)
    via = psql_gateway(gateway, user, *args, stdin=stdin)
    assert via.rc == direct.rc, f"exit code {via.rc} via the gateway, {direct.rc} direct:\n{via.err}"
    assert via.err == direct.err
    assert via.out == direct.out
    return via


def assert_clean(stmts: list[dict[str, Any]], *secrets_: str) -> None:
    """No literal value used in a query may be stored."""
    for st in stmts:
        for value in secrets_:
            assert value not in (st["text"] or ""), f"{value!r} stored in {st['text']!r}"
            assert value not in (st["error_message"] or ""), f"{value!r} stored in {st['error_message']!r}"


def assert_seq(stmts: list[dict[str, Any]]) -> None:
    assert [st["seq"] for st in stmts] == list(range(1, len(stmts) + 1))


# --- plain queries ----------------------------------------------------------------------------------------


def test_psql_plain_query_matches_direct_and_is_recorded(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user()
    query = ("SELECT id, name, email, card_number, balance, active, joined, tags, profile FROM customers "
             f"WHERE id <= 5 OR email = '{EMAIL}' ORDER BY id")
    via = both(gateway, upstream, user, "-c", query)
    assert "c7@example.com" in via.out and "(6 rows)" in via.out
    session, stmts = recorded(gateway, user)
    assert session["application_name"] == "psql"  # psql's fallback_application_name is relayed
    assert session["auth_method"] and session["token_id"]
    assert 0 < session["bytes_from_client"] < session["bytes_to_client"]
    assert len(stmts) == 1
    st = stmts[0]
    assert st["protocol"] == "simple" and st["kind"] == "select" and st["status"] == "ok"
    assert st["text"] == ("SELECT id, name, email, card_number, balance, active, joined, tags, profile FROM "
                          "customers WHERE id <= $1 OR email = $2 ORDER BY id")
    assert st["param_count"] == 0
    assert st["command_tag"] == "SELECT 6" and st["row_count"] == 6
    assert st["sqlstate"] is None and st["error_message"] is None
    assert st["duration_ms"] is not None and st["duration_ms"] >= 0
    assert_clean(stmts, EMAIL)


def test_psql_application_name_and_output_formats(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user()
    args = ("-A", "-t", "-F", "|", "-c", f"SELECT id, email, tags, profile FROM customers WHERE card_number = "
            f"'{CARD}' AND id BETWEEN 10 AND 12 ORDER BY id")
    direct = psql_direct(upstream, *args)
    via = psql_gateway(gateway, user, *args, appname="reporting job")
    assert (via.rc, via.out, via.err) == (direct.rc, direct.out, direct.err)
    assert via.out.splitlines() == [
        '10|c10@example.com|{t10,x}|{"k": "v10", "n": 10}',
        '11|c11@example.com|{t11,x}|{"k": "v11", "n": 11}',
        '12|c12@example.com|{t12,x}|{"k": "v12", "n": 12}',
    ]
    session, stmts = recorded(gateway, user)
    assert session["application_name"] == "reporting job"
    assert [(s["text"], s["row_count"]) for s in stmts] == [
        ("SELECT id, email, tags, profile FROM customers WHERE card_number = $1 AND id BETWEEN $2 AND $3 "
         "ORDER BY id", 3)]
    assert_clean(stmts, CARD)


def test_psql_several_statements_in_one_c(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user()
    via = both(gateway, upstream, user, "-c",
               f"SELECT count(*) FROM customers; SELECT max(id) FROM customers WHERE card_number = '{CARD}'; "
               f"SELECT name FROM customers WHERE email = '{EMAIL}'")
    assert "Customer 7" in via.out and "50" in via.out
    _, stmts = recorded(gateway, user)
    assert [(s["kind"], s["status"], s["command_tag"], s["row_count"], s["protocol"]) for s in stmts] == [
        ("select", "ok", "SELECT 1", 1, "simple")] * 3
    assert_seq(stmts)
    assert_clean(stmts, CARD, EMAIL)
    # Each statement is recorded as it would be on its own: placeholders numbered within the statement, so the
    # same statement has the same text whatever else was sent in the query string.
    assert [s["text"] for s in stmts] == [
        "SELECT count(*) FROM customers",
        "SELECT max(id) FROM customers WHERE card_number = $1",
        "SELECT name FROM customers WHERE email = $1",
    ]


def test_psql_error_in_the_middle_of_one_query_string(gateway: Gateway, upstream: UpstreamDB) -> None:
    """One Query message with three statements: the second fails, the server never runs the third."""
    user = new_user()
    via = both(gateway, upstream, user, "-c", "SELECT 1; SELECT 1/0; SELECT 2")
    assert via.rc == 1 and "division by zero" in via.err
    _, stmts = recorded(gateway, user)
    assert [(s["status"], s["sqlstate"]) for s in stmts] == [("ok", None), ("error", "22012"), ("skipped", None)]
    assert stmts[1]["error_message"] == "division by zero"
    assert [s["kind"] for s in stmts] == ["select"] * 3 and "1/0" not in stmts[1]["text"]


def test_psql_division_by_zero_verbose(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user()
    via = both(gateway, upstream, user, "-c", r"\set VERBOSITY verbose", "-c",
               f"SELECT id / 0 FROM customers WHERE email = '{EMAIL}'")
    assert via.rc == 1
    assert via.err.startswith("ERROR:  22012: division by zero"), via.err
    _, stmts = recorded(gateway, user)
    assert len(stmts) == 1
    st = stmts[0]
    assert (st["kind"], st["status"], st["sqlstate"], st["error_message"]) == (
        "select", "error", "22012", "division by zero")
    assert st["command_tag"] is None
    assert st["text"] == "SELECT id / $1 FROM customers WHERE email = $2"
    assert_clean(stmts, EMAIL)


def test_psql_data_error_message_does_not_store_the_value(gateway: Gateway, upstream: UpstreamDB) -> None:
    """invalid input syntax quotes the input; the store must keep the SQLSTATE but not the value."""
    user = new_user()
    via = both(gateway, upstream, user, "-c", f"SELECT id FROM customers WHERE id = 'x{CARD}'::int")
    assert via.rc == 1 and CARD in via.err  # the client sees the server's message unchanged
    _, stmts = recorded(gateway, user)
    assert [(s["status"], s["sqlstate"]) for s in stmts] == [("error", "22P02")]
    assert_clean(stmts, CARD)


# --- meta commands ------------------------------------------------------------------------------------------


def test_psql_meta_commands_match_direct(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user()
    commands = [r"\d", r"\dt", r"\d customers", rf"\l {upstream.name}", r"\dn", r"\df",
                r"\df pg_catalog.int4*", r"\dT+ pg_catalog.int4", r"\x on", r"\d+ customers"]
    args = [a for c in commands for a in ("-c", c)]
    via = both(gateway, upstream, user, *args)
    assert via.rc == 0 and via.err == ""
    assert 'Table "public.customers"' in via.out
    assert upstream.name in via.out and "public" in via.out and "int4pl" in via.out
    _, stmts = recorded(gateway, user)
    # every meta command ran at least one catalog query; all of them in the simple protocol and all fine
    assert len(stmts) >= len(commands) - 1  # \x sends nothing
    assert all(s["protocol"] == "simple" and s["status"] == "ok" for s in stmts), stmts
    assert all(s["kind"] == "select" and s["command_tag"].startswith("SELECT ") for s in stmts)
    assert any("pg_catalog.pg_database" in s["text"] for s in stmts)
    assert any("pg_catalog.pg_proc" in s["text"] for s in stmts)
    assert all(upstream.name not in s["text"] and "customers" not in s["text"] for s in stmts), \
        "the patterns psql quotes into its catalog queries are literals and must be redacted"
    assert_seq(stmts)


def test_psql_full_database_list_shows_the_same_row(gateway: Gateway, upstream: UpstreamDB) -> None:
    """``\\l`` lists every database of the server (other tests create some), so compare our database's row."""
    user = new_user()
    direct = psql_direct(upstream, "-c", r"\l")
    via = psql_gateway(gateway, user, "-c", r"\l")
    assert via.rc == direct.rc == 0 and via.err == direct.err == ""
    ours = [line for line in via.out.splitlines() if upstream.name in line]
    assert ours and ours == [line for line in direct.out.splitlines() if upstream.name in line]
    assert via.out.splitlines()[:4] == direct.out.splitlines()[:4]
    _, stmts = recorded(gateway, user)
    assert len(stmts) == 1 and stmts[0]["status"] == "ok" and "pg_database" in stmts[0]["text"]


# --- transactions and scripts ----------------------------------------------------------------------------------

TRANSACTION_SCRIPT = f"""CREATE TEMP TABLE t (id int PRIMARY KEY, email text);
BEGIN;
INSERT INTO t VALUES (1, 'kept@example.com');
SAVEPOINT s1;
INSERT INTO t VALUES (2, 'dropped@example.com');
INSERT INTO t VALUES (1, '{EMAIL}');
ROLLBACK TO SAVEPOINT s1;
INSERT INTO t VALUES (3, 'also-kept@example.com');
RELEASE SAVEPOINT s1;
COMMIT;
SELECT * FROM t ORDER BY id;
"""


def test_psql_transaction_with_savepoints(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user()
    via = both(gateway, upstream, user, "-e", "-f", "-", stdin=TRANSACTION_SCRIPT)
    assert via.rc == 0
    assert "ERROR:  duplicate key value violates unique constraint" in via.err
    assert "kept@example.com" in via.out and "also-kept@example.com" in via.out
    assert "dropped@example.com" not in via.out.split("ROLLBACK TO SAVEPOINT s1;")[1]
    _, stmts = recorded(gateway, user)
    got = [(s["kind"], s["status"], s["command_tag"], s["sqlstate"]) for s in stmts]
    assert got == [
        ("create", "ok", "CREATE TABLE", None),
        ("transaction", "ok", "BEGIN", None),
        ("insert", "ok", "INSERT 0 1", None),
        ("transaction", "ok", "SAVEPOINT", None),
        ("insert", "ok", "INSERT 0 1", None),
        ("insert", "error", None, "23505"),
        ("transaction", "ok", "ROLLBACK", None),
        ("insert", "ok", "INSERT 0 1", None),
        ("transaction", "ok", "RELEASE", None),
        ("transaction", "ok", "COMMIT", None),
        ("select", "ok", "SELECT 2", None),
    ]
    assert stmts[2]["text"] == "INSERT INTO t VALUES ($1, $2)" and stmts[2]["row_count"] == 1
    assert stmts[6]["text"] == "ROLLBACK TO SAVEPOINT s1"
    assert stmts[10]["row_count"] == 2
    assert_seq(stmts)
    assert_clean(stmts, "kept@example.com", "dropped@example.com", EMAIL)


def test_psql_failed_transaction_then_commit_reports_rollback(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user()
    script = "BEGIN;\nSELECT 1/0;\nSELECT 1;\nCOMMIT;\n"
    via = both(gateway, upstream, user, "-f", "-", stdin=script)
    assert "current transaction is aborted" in via.err and "ROLLBACK" in via.out
    _, stmts = recorded(gateway, user)
    assert [(s["status"], s["sqlstate"], s["command_tag"]) for s in stmts] == [
        ("ok", None, "BEGIN"), ("error", "22012", None), ("error", "25P02", None), ("ok", None, "ROLLBACK")]


def test_psql_on_error_stop(gateway: Gateway, upstream: UpstreamDB) -> None:
    script = f"SELECT 1 AS one;\nSELECT id / 0 FROM customers WHERE card_number = '{CARD}';\nSELECT 2 AS two;\n"
    stop_user, go_user = new_user(), new_user()
    stopped = both(gateway, upstream, stop_user, "-v", "ON_ERROR_STOP=1", "-f", "-", stdin=script)
    assert stopped.rc == 3 and "one" in stopped.out and "two" not in stopped.out
    _, stmts = recorded(gateway, stop_user)
    assert [(s["status"], s["sqlstate"]) for s in stmts] == [("ok", None), ("error", "22012")]
    assert_clean(stmts, CARD)

    carried_on = both(gateway, upstream, go_user, "-f", "-", stdin=script)
    assert carried_on.rc == 0 and "two" in carried_on.out
    _, stmts = recorded(gateway, go_user)
    assert [(s["status"], s["sqlstate"]) for s in stmts] == [("ok", None), ("error", "22012"), ("ok", None)]

    single_user = new_user()
    single = both(gateway, upstream, single_user, "-1", "-v", "ON_ERROR_STOP=1", "-f", "-", stdin=script)
    assert single.rc == 3
    _, stmts = recorded(gateway, single_user)
    assert [(s["kind"], s["status"]) for s in stmts] == [
        ("transaction", "ok"), ("select", "ok"), ("select", "error"), ("transaction", "ok")]
    assert stmts[-1]["command_tag"] == "ROLLBACK"


def test_psql_copy_to_stdout_and_variables(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user()
    script = (
        "\\set lim 25\n"
        "COPY (SELECT id, email, card_number, tags FROM customers WHERE id <= :lim ORDER BY id) TO STDOUT;\n"
        "SELECT email FROM customers WHERE email = :'em' \\gset\n"
        "\\echo :email\n"
    )
    via = both(gateway, upstream, user, "-v", f"em={EMAIL}", "-f", "-", stdin=script)
    lines = via.out.splitlines()
    assert len(lines) == 26 and lines[0] == f"1\tc1@example.com\t{CARD}\t{{t1,x}}" and lines[-1] == EMAIL
    _, stmts = recorded(gateway, user)
    assert [(s["kind"], s["status"], s["command_tag"], s["row_count"]) for s in stmts] == [
        ("copy", "ok", "COPY 25", 25), ("select", "ok", "SELECT 1", 1)]
    assert stmts[1]["text"] == "SELECT email FROM customers WHERE email = $1"
    assert_clean(stmts, EMAIL, CARD)


def test_psql_copy_from_stdin(gateway: Gateway, upstream: UpstreamDB) -> None:
    user = new_user()
    script = ("CREATE TEMP TABLE imported (id int, email text);\n"
              "COPY imported FROM STDIN;\n1\ta@example.com\n2\tb@example.com\n\\.\n"
              "SELECT count(*), max(email) FROM imported;\n")
    via = both(gateway, upstream, user, "-f", "-", stdin=script)
    assert "b@example.com" in via.out
    _, stmts = recorded(gateway, user)
    assert [(s["kind"], s["status"], s["command_tag"]) for s in stmts] == [
        ("create", "ok", "CREATE TABLE"), ("copy", "ok", "COPY 2"), ("select", "ok", "SELECT 1")]
    assert stmts[1]["row_count"] == 2
    assert_clean(stmts, "a@example.com")
