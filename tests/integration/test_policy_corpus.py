"""The policy corpus (tests/policy_corpus.py), decided three ways that must agree:

a. ``wardgate policy check`` in-process (click's CliRunner): every row, decision, rule and exit status;
b. the real ``wardgate`` executable for a handful of rows, ``--explain``, ``--prepared`` and bad usage;
c. a live gateway in front of a database of the test's own: every row sent by psycopg (simple protocol, or the
   extended one for rows with parameters), a sample again through the extended protocol (refusal at Parse), and
   afterwards the audit store, which must hold each refusal with its decision, rule and reason.

psycopg 3 sends a query without parameters as one simple Query (``PQsendQuery``: several statements in one string
work), and a query with parameters, binary results (``cursor(binary=True)``) or ``prepare=True`` through
Parse/Bind/Execute (``psycopg._cursor_base._execute_send``), where the server accepts one statement only.

A row may carry ``bug=`` (a suspected wardgate bug, with the secure expectation): it is ``xfail(strict=True)``,
so the bug stays visible and its fix is noticed. None is open.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from click.testing import CliRunner
from psycopg import sql
from psycopg.pq import TransactionStatus

from tests.conftest import ADMIN_DSN, PG_HOST, PG_PORT, WARDGATE, Gateway, UpstreamDB, flush_wait, run_gateway, unique
from tests.policy_corpus import CASES, DEFAULT, INTERNS, ORDERS_REVIEW, SECRETS, UNPARSED, Case, case_id
from wardgate.cli import main

# The configuration under test, as an operator would write it.
POLICY_YAML = """
policy: {exempt_groups: [dba], read_only_groups: [analysts]}
rules:
  - name: orders-need-review
    connections: [app]
    when: {kinds: [update, delete], tables: ["public.orders"]}
    action: review
    reason: changes to orders need a second pair of eyes
    # nobody reviews here: a held statement expires at once (test_reviews_live.py covers approvals)
    review: {approvers: [sre], expires_after: 0.3s, notice_interval: 0.3s}
  - name: no-secrets-table
    when: {tables: ["*.secrets"]}
    action: deny
    reason: the secrets table is off limits
  - name: interns-no-writes
    groups: [interns]
    when: {writes: true}
    action: deny
    reason: interns read only
"""
_POLICY: dict[str, Any] = yaml.safe_load(POLICY_YAML)
POLICY: dict[str, Any] = _POLICY["policy"]
RULES: list[dict[str, Any]] = _POLICY["rules"]
EXIT = {"allow": 0, "deny": 1, "review": 3}

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
INSERT INTO customers SELECT i, 'Customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 20) AS i;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, amount numeric(10,2),
                     status text DEFAULT 'new');
INSERT INTO orders SELECT i, 1 + i % 20, i * 10, 'new' FROM generate_series(1, 40) AS i;
CREATE TABLE secrets (id int PRIMARY KEY, secret text);
INSERT INTO secrets VALUES (1, 'hunter2');
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 30) AS i;
CREATE TABLE victim (id int PRIMARY KEY, v text);
INSERT INTO victim SELECT i, 'v' || i FROM generate_series(1, 10) AS i;
CREATE TABLE scratch_a (id int, extra text);
CREATE TABLE scratch_b (id int, extra text);
CREATE TABLE scratch_c (id int, extra text);
CREATE TABLE scratch_d (id int, extra text);
INSERT INTO scratch_a VALUES (1, 'a'); INSERT INTO scratch_c VALUES (1, 'c'); INSERT INTO scratch_d VALUES (1, 'd');
CREATE SEQUENCE s;
CREATE SCHEMA other;
CREATE TABLE other.orders (id int PRIMARY KEY, amount numeric);
INSERT INTO other.orders VALUES (1, 1), (2, 2);
CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM t;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
CREATE TABLE ro_probe (who text);
CREATE FUNCTION corpus_writer(who text) RETURNS int LANGUAGE sql AS $$ INSERT INTO ro_probe VALUES (who) RETURNING 1 $$;
"""


def _xfail(case: Case) -> list[pytest.MarkDecorator]:
    return [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []


ALL = [pytest.param(i, c, id=case_id(i, c), marks=_xfail(c)) for i, c in enumerate(CASES)]
EXTENDED = [pytest.param(i, c, id=case_id(i, c), marks=_xfail(c)) for i, c in enumerate(CASES) if c.extended]


def corpus_config(upstream_url: str, store_url: str) -> dict[str, Any]:
    return {
        "store": store_url,
        "tls": {"self_signed": True},
        "connections": {
            "app": {"type": "postgres", "upstream": upstream_url},
            "app_ro": {"type": "postgres", "upstream": upstream_url, "read_only": True},
        },
        "policy": POLICY,
        "rules": RULES,
    }


def test_corpus_shape() -> None:
    ids = [case_id(i, c) for i, c in enumerate(CASES)]
    assert len(set(ids)) == len(ids)
    assert [r["name"] for r in RULES] == [ORDERS_REVIEW, SECRETS, INTERNS]
    assert len(CASES) >= 160
    assert sum(c.decision == "allow" for c in CASES) >= 60
    assert {c.decision for c in CASES} == {"allow", "deny", "review"}
    for c in CASES:
        assert (c.rule == DEFAULT) == (c.decision == "allow"), c
        assert c.connection in ("app", "app_ro"), c


# === a. policy check, in-process ==================================================================================


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("corpus-cli")
    path = tmp / "wardgate.yaml"
    cfg = corpus_config("postgresql://corpus@127.0.0.1:5432/corpus", f"sqlite:///{tmp / 'wardgate.db'}")
    path.write_text(yaml.safe_dump(cfg))
    return path


def policy_check(config: Path, case: Case) -> tuple[int, dict[str, Any]]:
    args = ["policy", "check", "-c", str(config), "--connection", case.connection, "--groups", case.groups,
            "--sql", case.sql, "--json"]
    for name, body in case.prepared:
        args += ["--prepared", f"{name}={body}"]
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1, 3), (result.exit_code, result.output)
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize(("index", "case"), ALL)
def test_policy_check(cli_config: Path, index: int, case: Case) -> None:
    code, out = policy_check(cli_config, case)
    got = (out["decision"], out["rule"])
    assert got == (case.decision, case.rule), json.dumps(out["statements"], indent=1)
    assert code == EXIT[case.decision]
    assert out["connection"] == case.connection and out["groups"] == case.groups.split(",")
    if case.decision == "allow":
        assert all(s["decision"] == "allow" for s in out["statements"])
        return
    assert out["reason"], out
    # the statement that decided is named, and it is one of those listed with that decision and rule
    decided = out["statements"][out["statement"] - 1]
    assert (decided["decision"], decided["rule"]) == got
    if case.rule == UNPARSED:
        assert decided["kind"] == "unparsed" and decided["parse_error"]


# === b. the real executable ========================================================================================


def wardgate_command() -> list[str]:
    exe = Path(sys.executable).parent / "wardgate"
    return [str(exe)] if exe.exists() else list(WARDGATE)


def run_wardgate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*wardgate_command(), "policy", "check", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=60)


EXPLAIN_LINE = re.compile(r"^ {4}(deny|review|allow) +(\S+) +(matches|-)$")
IN_SCOPE_ENG_APP = [
    SECRETS, "no-destructive-ddl", "no-truncate", "no-delete-without-where", "no-update-without-where",
    "no-copy-program", "no-server-file-copy", "no-alter-system", "no-do-blocks", "no-role-changes",
    "no-server-functions", UNPARSED, "unknown-prepared-statement", ORDERS_REVIEW,
]


def test_executable_explain_lists_every_rule_in_scope(cli_config: Path) -> None:
    res = run_wardgate(cli_config, "--connection", "app", "--groups", "eng", "--explain",
                       "--sql", "/* one */ DELETE FROM public.orders WHERE id = 1")
    assert res.returncode == 3, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:3] == ["decision: review", "rule: orders-need-review",
                         "reason: changes to orders need a second pair of eyes"]
    assert "statement 1: DELETE FROM public.orders WHERE id = $1" in lines
    listed = [m.groups() for m in map(EXPLAIN_LINE.match, lines) if m]
    assert [name for _, name, _ in listed] == IN_SCOPE_ENG_APP  # deny before review; the file's before the pack
    assert [(a, n) for a, n, mark in listed if mark == "matches"] == [("review", ORDERS_REVIEW)]

    res = run_wardgate(cli_config, "--connection", "app_ro", "--groups", "interns", "--explain",
                       "--sql", "INSERT INTO t VALUES (1)")
    assert res.returncode == 1, res.stderr
    assert "rule: interns-no-writes" in res.stdout
    listed = [m.groups() for m in map(EXPLAIN_LINE.match, res.stdout.splitlines()) if m]
    names = [name for _, name, _ in listed]
    assert ORDERS_REVIEW not in names  # scoped to the app connection
    # scoped rules first (the file's before the built-in read-only rules: writing, and turning read-only off),
    # then the rest in file/pack order
    assert names[:4] == [INTERNS, "read-only", "read-only", SECRETS]
    assert [n for _, n, mark in listed if mark == "matches"] == [INTERNS, "read-only"]

    res = run_wardgate(cli_config, "--connection", "app", "--sql", "SELECT 1; DELETE FROM orders WHERE id = 1; "
                       "DROP TABLE t")
    assert res.returncode == 1, res.stderr
    assert res.stdout.startswith("decision: deny\nrule: no-destructive-ddl\n")
    assert "decided by statement 3 of 3; nothing of the message would run" in res.stdout


def test_executable_prepared_statements(cli_config: Path) -> None:
    res = run_wardgate(cli_config, "--connection", "app", "--sql", "EXECUTE wipe", "--json",
                       "--prepared", "wipe=DELETE FROM t", "--prepared", "one = SELECT 1")
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert (out["decision"], out["rule"]) == ("deny", "no-delete-without-where")
    (st,) = out["statements"]
    assert st["kind"] == "execute" and st["runs"] == "DELETE FROM t" and st["unbounded"] == ["delete"]

    res = run_wardgate(cli_config, "--connection", "app", "--sql", "EXECUTE del(3)", "--json",
                       "--prepared", "del=DELETE FROM t WHERE id = $1")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["statements"][0]["runs"] == "DELETE FROM t WHERE id = $1"

    res = run_wardgate(cli_config, "--connection", "app", "--sql", "EXECUTE wipe", "--json")
    assert res.returncode == 1, res.stderr
    assert json.loads(res.stdout)["rule"] == "unknown-prepared-statement"

    # a PREPARE earlier in the same string counts, and its decision is its inner statement's
    res = run_wardgate(cli_config, "--connection", "app", "--sql",
                       "PREPARE r AS UPDATE orders SET amount = 0 WHERE id = $1; EXECUTE r(2)", "--json")
    assert res.returncode == 3, res.stderr
    assert [s["decision"] for s in json.loads(res.stdout)["statements"]] == ["review", "review"]


def test_executable_allows_and_reads_only(cli_config: Path) -> None:
    res = run_wardgate(cli_config, "--connection", "app_ro", "--groups", "analysts", "--sql",
                       "SELECT * FROM t WHERE id = 1", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["decision"], out["rule"], out["statement"]) == ("allow", "default", None)
    res = run_wardgate(cli_config, "--connection", "app_ro", "--sql", "SELECT * FROM t FOR UPDATE")
    assert res.returncode == 1
    assert "rule: read-only\nreason: the connection is read-only" in res.stdout


def test_executable_bad_usage(cli_config: Path) -> None:
    res = run_wardgate(cli_config, "--connection", "nope", "--sql", "SELECT 1")
    assert res.returncode == 2
    assert 'connection "nope" is not in the configuration' in res.stderr
    res = run_wardgate(cli_config, "--connection", "app", "--sql", "EXECUTE p", "--prepared", "p")
    assert res.returncode == 2
    assert "--prepared wants NAME=SQL" in res.stderr
    res = run_wardgate(cli_config, "--connection", "app", "--sql", "SELECT 1", "--prepared", "=SELECT 1")
    assert res.returncode == 2
    res = run_wardgate(cli_config, "--connection", "app")  # --sql is required
    assert res.returncode == 2 and "--sql" in res.stderr
    assert "Traceback" not in res.stderr


# === c. the live gateway ===========================================================================================


@pytest.fixture(scope="module")
def corpus_db() -> Iterator[UpstreamDB]:
    """A database and role of the corpus's own: its rows create, alter and delete, which other modules sharing
    the session's upstream database must not see."""
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {exc}", pytrace=False)
    db = UpstreamDB(unique("wgt_corpus"), unique("wgt_corpus_role"))
    with admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(db.role)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db.name),
                                                                    sql.Identifier(db.role)))
    with db.connect(autocommit=True) as conn:
        conn.execute(SCHEMA)
    yield db
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(db.role)))


@pytest.fixture(scope="module")
def corpus_gateway(corpus_db: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    url = f"postgresql://{corpus_db.role}@{PG_HOST}:{PG_PORT}/{corpus_db.name}"
    extra = {
        # merged key by key into the conftest's connections (which hold "app")
        "connections": {"app_ro": {"type": "postgres", "upstream": url, "read_only": True}},
        "policy": POLICY,
        "rules": RULES,
    }
    with run_gateway(tmp_path_factory.mktemp("corpus-gw"), corpus_db, extra=extra) as gw:
        yield gw


MARKER = re.compile(r"^SELECT \$1 AS corpus_row_(\d+)$")
ALIVE = "SELECT 1 AS corpus_alive"
COPY_CLIENT = re.compile(r"^\s*copy\b.*\b(stdin|stdout)\b", re.IGNORECASE | re.DOTALL)


@dataclass
class Ran:
    """What the live run did for one row: the session (user) it used, and what it sent around it."""

    index: int
    case: Case
    user: str
    cleanup: int  # statements sent after the row before the liveness check (a ROLLBACK)
    error: str | None


@dataclass
class LiveRun:
    gw: Gateway
    conns: dict[str, psycopg.Connection[Any]] = field(default_factory=dict)
    ran: list[Ran] = field(default_factory=list)

    def connect(self, user: str, groups: str, connection: str, **extra: str) -> psycopg.Connection[Any]:
        dsn = self.gw.dsn(user, self.gw.token(user, groups), dbname=connection, **extra)
        return psycopg.connect(dsn, autocommit=True)

    def session_for(self, index: int, case: Case) -> tuple[str, psycopg.Connection[Any]]:
        """One connection per (groups, connection); a suspected-bug row gets one of its own, since what it was
        refused to do (change a setting, remove rows) may run and must not change what later rows see."""
        user = f"corpus-{case.groups.replace(',', '+')}-{case.connection}" + (f"-bug{index}" if case.bug else "")
        if user not in self.conns:
            self.conns[user] = self.connect(user, case.groups, case.connection)
        return user, self.conns[user]

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()


@pytest.fixture(scope="module")
def live(corpus_gateway: Gateway) -> Iterator[LiveRun]:
    run = LiveRun(corpus_gateway)
    yield run
    run.close()


def execute(conn: psycopg.Connection[Any], case: Case) -> None:
    """Send the row as a client would: COPY to or from the client through psycopg's copy(), a row with
    parameters through the extended protocol, anything else as one simple Query (several statements allowed)."""
    cur = conn.cursor()
    if case.params is not None:
        cur.execute(re.sub(r"\$\d+", "%s", case.sql).encode(), case.params)
    elif COPY_CLIENT.match(case.sql):
        with cur.copy(case.sql.encode()) as copy:
            if re.search(r"\bstdout\b", case.sql, re.IGNORECASE):
                for _ in copy:
                    pass
    else:
        cur.execute(case.sql.encode())  # bytes: psycopg takes the text as it is, % signs included
        while cur.nextset():
            pass


def refusal_state(case: Case) -> str:
    """The SQLSTATE of a refused row: a syntax error, a review nobody decided (it expires), or a denial."""
    if case.rule == UNPARSED:
        return "42601"
    return "57014" if case.decision == "review" else "42501"


def assert_outcome(case: Case, exc: psycopg.Error | None) -> None:
    if case.decision == "allow":
        if exc is not None:
            assert not str(exc.diag.message_primary or "").startswith("wardgate:"), f"refused: {exc}"
        return
    assert exc is not None, f"{case.sql!r} ran; it should have been refused by {case.rule}"
    message = str(exc.diag.message_primary or "")
    assert exc.sqlstate == refusal_state(case), (exc.sqlstate, message)
    assert message.startswith("wardgate:") and f'rule "{case.rule}"' in message, message
    if case.decision == "review":
        assert "expired: nobody decided" in message, message  # held, then nobody approved in time
    else:
        assert "denied by rule" in message or case.rule == UNPARSED, message


@pytest.mark.parametrize(("index", "case"), ALL)
def test_live(live: LiveRun, index: int, case: Case) -> None:
    assert_outcome(case, run_row(live, index, case))


def run_row(live: LiveRun, index: int, case: Case) -> psycopg.Error | None:
    """Run one row on its session, between a marker and a liveness check; the error it raised, if any."""
    user, conn = live.session_for(index, case)
    conn.execute(f"SELECT {index} AS corpus_row_{index}")
    for name, body in case.prepared:
        conn.execute(f"PREPARE {name} AS {body}".encode())
    exc: psycopg.Error | None = None
    try:
        execute(conn, case)
    except psycopg.Error as e:
        exc = e
    cleanup = 0
    if conn.info.transaction_status != TransactionStatus.IDLE:  # BEGIN, START TRANSACTION, or a failed one
        conn.execute("ROLLBACK")
        cleanup = 1
    assert conn.execute(ALIVE).fetchone() == (1,), "the connection is not usable after the row"
    live.ran.append(Ran(index, case, user, cleanup, None if exc is None else str(exc)))
    return exc


def _records_by_row(store: Any, ran: list[Ran]) -> dict[int, list[dict[str, Any]]]:
    """Each row's own statement records: those between its marker and the next, less the setup PREPAREs before
    it and the ROLLBACK and liveness check after it."""
    out: dict[int, list[dict[str, Any]]] = {}
    by_index = {r.index: r for r in ran}
    for user in sorted({r.user for r in ran}):
        sessions = flush_wait(lambda u=user: [s for s in store.sessions(user=u) if s["ended_at"]])
        assert len(sessions) == 1, f"{user}: {sessions}"
        stmts = store.statements(sessions[0]["id"])
        assert [s["seq"] for s in stmts] == list(range(1, len(stmts) + 1)), "a statement record is missing"
        starts = [(i, int(m.group(1))) for i, s in enumerate(stmts) if (m := MARKER.match(s["text"] or ""))]
        for n, (pos, index) in enumerate(starts):
            end = starts[n + 1][0] if n + 1 < len(starts) else len(stmts)
            r = by_index[index]
            own = stmts[pos + 1 + len(r.case.prepared):end]
            assert own and own[-1]["text"] == "SELECT $1 AS corpus_alive", own
            out[index] = own[: len(own) - 1 - r.cleanup]
    return out


def test_live_audit(live: LiveRun) -> None:
    """Every refusal is in the audit with its decision, rule and reason; every allowed statement as allowed."""
    if not live.ran:  # run on its own (-k): run the rows here, their outcomes are test_live's to check
        for index, case in enumerate(CASES):
            run_row(live, index, case)
    live.close()  # ends the sessions, so that all their records are in
    records = _records_by_row(live.gw.store(), live.ran)
    assert set(records) == {r.index for r in live.ran}
    for r in live.ran:
        if r.case.bug:
            continue
        own = records[r.index]
        got = [(s["kind"], s["status"], s["decision"], s["rule"]) for s in own]
        where = f"row {case_id(r.index, r.case)} (client saw: {r.error}): {got}"
        if r.case.decision == "allow":
            for s in own:
                assert (s["decision"], s["rule"], s["reason"]) == ("allow", "default", None), where
                assert s["status"] not in ("denied", "skipped"), where
            continue
        denied = [s for s in own if s["status"] == "denied"]
        assert len(denied) == 1, where
        (d,) = denied
        assert (d["decision"], d["rule"]) == (r.case.decision, r.case.rule), where
        assert d["reason"] and d["sqlstate"] == refusal_state(r.case), where
        assert d["error_message"] and f'rule "{r.case.rule}"' in d["error_message"], where
        assert all(s["status"] == "skipped" for s in own if s is not d), where  # nothing of the message ran


@pytest.mark.parametrize(("index", "case"), EXTENDED)
@pytest.mark.parametrize("mode", ["binary", "prepared"])
def test_live_extended_protocol(live: LiveRun, index: int, case: Case, mode: str) -> None:
    """The same rows through Parse/Bind/Execute: a binary cursor (unnamed statement) and psycopg's server-side
    prepared statements (named). A refusal happens at Parse, before the statement exists on the server."""
    user = f"corpus-ext-{mode}-{index}"
    with live.connect(user, case.groups, case.connection) as conn:
        for name, body in case.prepared:
            conn.execute(f"PREPARE {name} AS {body}".encode())
        exc: psycopg.Error | None = None
        try:
            if mode == "binary":
                conn.cursor(binary=True).execute(case.sql.encode())
            else:
                conn.execute(case.sql.encode(), prepare=True)
        except psycopg.Error as e:
            exc = e
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        assert conn.execute(ALIVE).fetchone() == (1,)
        assert_outcome(case, exc)
    store = live.gw.store()
    sessions = flush_wait(lambda: [s for s in store.sessions(user=user) if s["ended_at"]])
    assert len(sessions) == 1
    stmts = [s for s in store.statements(sessions[0]["id"]) if s["text"] != "SELECT $1 AS corpus_alive"]
    row = [s for s in stmts if s["protocol"] == "extended"]
    assert row, stmts
    if case.decision == "allow":
        assert all((s["decision"], s["rule"]) == ("allow", "default") for s in row), row
    else:
        assert [(s["status"], s["decision"], s["rule"]) for s in row] == [("denied", case.decision, case.rule)], row


@pytest.mark.parametrize("how", ["SET", "startup option"])
def test_live_string_syntax_cannot_hide_a_statement(live: LiveRun, how: str) -> None:
    """A client that turns standard_conforming_strings off (SET, or the startup packet's options) must not be
    able to smuggle a refused statement past the policy inside what looks like a string literal."""
    user = f"corpus-scs-{how.replace(' ', '-')}"
    extra = {"options": "-c standard_conforming_strings=off"} if how != "SET" else {}
    try:
        conn = live.connect(user, "eng", "app", **extra)
    except psycopg.Error:
        return  # the gateway refusing such a session is a fix too
    with conn:
        with contextlib.suppress(psycopg.Error):
            if how == "SET":
                conn.execute("SET standard_conforming_strings = off")
        try:
            cur = conn.execute(b"SELECT '\\', '; SELECT secret AS leaked FROM secrets; --'")
        except psycopg.Error as exc:
            assert str(exc.diag.message_primary).startswith("wardgate:"), exc
            return
        columns = [[c.name for c in cur.description or []]]
        while cur.nextset():
            columns.append([c.name for c in cur.description or []])
        assert ["leaked"] not in columns, "SELECT ... FROM secrets ran past no-secrets-table"


@pytest.mark.parametrize(("groups", "connection"), [("eng", "app_ro"), ("analysts", "app")])
def test_live_read_only_cannot_write_through_a_function(
    live: LiveRun, corpus_db: UpstreamDB, groups: str, connection: str
) -> None:
    user = f"corpus-ro-function-{groups}-{connection}"
    with live.connect(user, groups, connection) as conn, contextlib.suppress(psycopg.Error):
        conn.execute(sql.SQL("SELECT corpus_writer({})").format(sql.Literal(user)))
    with corpus_db.connect() as check:
        written = check.execute("SELECT count(*) FROM ro_probe WHERE who = %s", [user]).fetchone()
    assert written == (0,), "a read-only session wrote through a function"

