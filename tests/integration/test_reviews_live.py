"""Command review on a live gateway: a statement a rule holds waits (the client told why and by whom) until
reviewers decide through `wardgate reviews` with their own tokens; approved, exactly that statement runs, once;
denied, expired or withdrawn (cancel), it fails with a clear error and nothing of it ran. Self-approval, votes
from outside the approver groups, double votes and "one person for two groups" are refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import pq

from tests.conftest import Gateway, UpstreamDB, flush_wait, recorded, run_gateway, unique
from wardgate.store.reviews import Review, ReviewStore

RULES = [
    {"name": "orders-need-review", "action": "review", "reason": "orders are money",
     "when": {"kinds": ["update", "delete"], "tables": ["orders"]},
     "review": {"approvers": ["sre"], "expires_after": "60s", "notice_interval": "1s"}},
    {"name": "payouts-two-groups", "action": "review", "when": {"kinds": ["update"], "tables": ["payouts"]},
     "review": {"approvers": ["sre", "dba"], "all_groups": True}},
    {"name": "payouts-delete-quick", "action": "review", "when": {"kinds": ["delete"], "tables": ["payouts"]},
     "review": {"approvers": ["sre"], "expires_after": "2s", "notice_interval": "1s"}},
    # a maintenance window that is not now: from two hours from now, for an hour
    {"name": "schema-window", "action": "review", "when": {"kinds": ["create"], "tables_written": ["orders"]},
     "review": {"approvers": ["sre"], "window": {
         "start": (datetime.now(UTC) + timedelta(hours=2)).strftime("%H:%M"),
         "end": (datetime.now(UTC) + timedelta(hours=3)).strftime("%H:%M")}}},
]


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with upstream.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, amount int)")
        conn.execute("CREATE TABLE IF NOT EXISTS payouts (id int PRIMARY KEY, amount int)")
    with run_gateway(tmp_path_factory.mktemp("reviews-live"), upstream, extra={"rules": RULES}) as g:
        yield g


def seed(upstream: UpstreamDB, table: str, *rows: tuple[int, int]) -> None:
    with upstream.connect(autocommit=True) as conn:
        for r in rows:
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount",
                         r)


def amount(upstream: UpstreamDB, table: str, key: int) -> int | None:
    with upstream.connect() as conn:
        row = conn.execute(f"SELECT amount FROM {table} WHERE id = %s", (key,)).fetchone()
    return None if row is None else int(row[0])


def pending_of(gw: Gateway, requester: str, timeout: float = 15) -> Review:
    rs = ReviewStore(gw.store())
    found: Review = flush_wait(lambda: next((r for r in rs.list("pending") if r.requester == requester), None),
                               timeout)
    assert found is not None, f"no pending review for {requester}"
    full = rs.get(found.id)
    assert full is not None
    return full


def review(gw: Gateway, review_id: str) -> Review:
    r = ReviewStore(gw.store()).get(review_id)
    assert r is not None
    return r


def vote(gw: Gateway, verb: str, review_id: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return gw.cli("reviews", verb, review_id, "--token", token, *extra, check=False)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def events_of(gw: Gateway, review_id: str) -> list[tuple[str, str | None]]:
    rows = gw.store().events(limit=500)
    return [(e["kind"], e["subject"]) for e in reversed(rows) if e["detail"].get("review") == review_id]


def test_psql_waits_is_told_why_and_runs_once_approved(gw: Gateway, upstream: UpstreamDB) -> None:
    seed(upstream, "orders", (1, 10))
    user, reviewer = unique("req"), unique("sre")
    proc = subprocess.Popen(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", gw.dsn(user, gw.token(user)), "-c",
         "UPDATE orders SET amount = 11 WHERE id = 1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        r = pending_of(gw, user)
        assert (r.rule, r.redacted, r.statement, r.connection) == (
            "orders-need-review", "UPDATE orders SET amount = $1 WHERE id = $2",
            "UPDATE orders SET amount = 11 WHERE id = 1", "app")
        time.sleep(1.5)  # at least one "still waiting" notice
        assert amount(upstream, "orders", 1) == 10  # nothing ran while it waits
        res = vote(gw, "approve", r.id, gw.token(reviewer, "sre"), "--reason", "checked the ticket")
        assert res.returncode == 0, res.stderr
        assert f"review {r.id} approved by {reviewer}" in res.stdout
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout.strip() == "UPDATE 1"
    assert f'statement held for review {r.id} by rule "orders-need-review"' in stderr
    assert "1 approval from: sre" in stderr and f"wardgate reviews approve {r.id}" in stderr
    assert f"still waiting for review {r.id}" in stderr
    assert amount(upstream, "orders", 1) == 11
    after = review(gw, r.id)
    assert after.status == "executed" and after.decided_by == (reviewer,) and after.executed_at is not None
    _, stmts = recorded(gw, user)
    assert [(s["kind"], s["status"], s["decision"], s["rule"], s["reason"], s["command_tag"]) for s in stmts] == [
        ("update", "ok", "review", "orders-need-review", f"review {r.id} approved by {reviewer}", "UPDATE 1")]
    assert events_of(gw, r.id) == [("review_requested", user), ("review_vote", reviewer),
                                   ("review_approved", reviewer), ("review_executed", user)]
    # Approved once, ran once: nobody can vote on it again.
    again = vote(gw, "approve", r.id, gw.token(unique("sre"), "sre"))
    assert again.returncode == 1 and "executed, not pending" in again.stderr


def test_denied_over_the_extended_protocol_with_the_reviewers_reason(gw: Gateway, upstream: UpstreamDB) -> None:
    seed(upstream, "orders", (2, 20))
    user, reviewer = unique("req"), unique("sre")
    notices: list[str] = []
    with psycopg.connect(gw.dsn(user, gw.token(user)), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("SET wardgate.reason = 'INC-4711: duplicate order'")
        t, out = in_thread(lambda: conn.execute("DELETE FROM orders WHERE id = %s", (2,)))
        r = pending_of(gw, user)
        assert r.reason == "INC-4711: duplicate order" and r.param_count == 1
        assert r.redacted == "DELETE FROM orders WHERE id = $1"
        res = vote(gw, "deny", r.id, gw.token(reviewer, "sre,eng"), "--reason", "use the refund flow")
        assert res.returncode == 0 and f"review {r.id} denied" in res.stdout, res.stderr
        t.join(15)
        err = out.get("error")
        assert isinstance(err, psycopg.errors.InsufficientPrivilege), out
        assert f"review {r.id} denied by {reviewer}" in str(err)
        assert err.diag.message_detail == "reason: use the refund flow"
        assert any(f"held for review {r.id}" in n for n in notices)
        # The session goes on as after any error.
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert amount(upstream, "orders", 2) == 20
    assert review(gw, r.id).status == "denied"
    _, stmts = recorded(gw, user)
    denied = [s for s in stmts if s["kind"] == "delete"]
    assert [(s["status"], s["decision"], s["sqlstate"]) for s in denied] == [("denied", "review", "42501")]
    assert denied[0]["reason"] == f"review {r.id} denied by {reviewer}: use the refund flow"


def test_refused_votes_self_outsider_twice_and_one_person_for_two_groups(gw: Gateway, upstream: UpstreamDB) -> None:
    seed(upstream, "payouts", (1, 100))
    user = unique("req")
    both, dba, outsider = unique("both"), unique("dba"), unique("eng")
    with psycopg.connect(gw.dsn(user, gw.token(user, "eng,sre")), autocommit=True) as conn:
        t, out = in_thread(lambda: conn.execute("UPDATE payouts SET amount = 0 WHERE id = 1"))
        r = pending_of(gw, user)
        assert r.spec.all_groups and r.spec.min_approvals == 2
        own = vote(gw, "approve", r.id, gw.token(user, "eng,sre"))
        assert own.returncode == 1 and "self-approval is refused" in own.stderr
        other = vote(gw, "approve", r.id, gw.token(outsider, "eng"))
        assert other.returncode == 1 and "not in an approver group" in other.stderr
        first = vote(gw, "approve", r.id, gw.token(both, "sre,dba"))
        assert first.returncode == 0 and "still pending" in first.stdout, first.stderr
        twice = vote(gw, "approve", r.id, gw.token(both, "sre,dba"))
        assert twice.returncode == 1 and "already voted" in twice.stderr
        assert review(gw, r.id).status == "pending"  # one person in both groups is one approval of two
        forged = vote(gw, "approve", r.id, gw.token(dba, "dba")[:-4] + "AAAA")
        assert forged.returncode == 1 and "token was refused" in forged.stderr
        assert amount(upstream, "payouts", 1) == 100
        last = vote(gw, "approve", r.id, gw.token(dba, "dba"))
        assert last.returncode == 0 and "approved by" in last.stdout, last.stderr
        t.join(15)
        assert "error" not in out, out
        assert out["result"].rowcount == 1
    assert amount(upstream, "payouts", 1) == 0
    assert set(review(gw, r.id).decided_by) == {both, dba}
    kinds = [k for k, _ in events_of(gw, r.id)]
    assert kinds.count("review_vote_refused") == 3 and kinds.count("review_vote") == 2
    assert kinds.count("auth_failed") == 1  # the forged token: who it claims to be is not believed


def test_expiry_and_cancel_fail_the_statement_and_nothing_runs(gw: Gateway, upstream: UpstreamDB) -> None:
    seed(upstream, "payouts", (2, 200), (3, 300))
    user = unique("req")
    with psycopg.connect(gw.dsn(user, gw.token(user)), autocommit=True) as conn:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled) as err:
            conn.execute("DELETE FROM payouts WHERE id = 2")
        assert 1.5 < time.monotonic() - started < 10
        assert "expired: nobody decided within 2s" in str(err.value)
        expired = pending_or_last(gw, user)
        assert expired.status == "expired"
        # Cancel (a real CancelRequest) withdraws the request.
        t, out = in_thread(lambda: conn.execute("UPDATE orders SET amount = 1 WHERE id = 3"))
        r = pending_of(gw, user)
        conn.cancel()
        t.join(10)
        err2 = out.get("error")
        assert isinstance(err2, psycopg.errors.QueryCanceled), out
        assert err2.diag.message_detail == f"wardgate: review {r.id} was withdrawn; nothing of the message ran"
        assert review(gw, r.id).status == "withdrawn"
        late = vote(gw, "approve", r.id, gw.token(unique("sre"), "sre"))
        assert late.returncode == 1 and "withdrawn, not pending" in late.stderr
        assert conn.execute("SELECT 2").fetchone() == (2,)
    assert amount(upstream, "payouts", 2) == 200
    _, stmts = recorded(gw, user)
    assert [(s["kind"], s["status"], s["sqlstate"]) for s in stmts if s["decision"] == "review"] == [
        ("delete", "denied", "57014"), ("update", "denied", "57014")]
    kinds = [k for k, _ in events_of(gw, r.id)]
    assert kinds == ["review_requested", "review_withdrawn", "review_vote_refused"]


def pending_or_last(gw: Gateway, requester: str) -> Review:
    rows = [r for r in ReviewStore(gw.store()).list() if r.requester == requester]
    assert rows
    return rows[0]


def test_held_inside_a_transaction_and_what_the_client_sent_after_it_waits(gw: Gateway, upstream: UpstreamDB) -> None:
    """A pipeline of statements after the held one runs after it, in order; the transaction stays whole."""
    seed(upstream, "orders", (4, 40))
    user, reviewer = unique("req"), unique("sre")
    with psycopg.connect(gw.dsn(user, gw.token(user))) as conn:
        conn.execute("SELECT 1")  # BEGIN

        def batch() -> list[Any]:
            with conn.pipeline():
                c1 = conn.execute("UPDATE orders SET amount = 41 WHERE id = 4")
                c2 = conn.execute("SELECT amount FROM orders WHERE id = 4")
            return [c1.rowcount, c2.fetchone()]

        t, out = in_thread(batch)
        r = pending_of(gw, user)
        time.sleep(0.5)
        assert t.is_alive()
        assert vote(gw, "approve", r.id, gw.token(reviewer, "sre")).returncode == 0
        t.join(15)
        assert out.get("result") == [1, (41,)], out
        assert conn.info.transaction_status == pq.TransactionStatus.INTRANS
        conn.rollback()
    assert amount(upstream, "orders", 4) == 40


def test_client_gone_while_waiting_leaves_the_request_and_records_the_statement_lost(
        gw: Gateway, upstream: UpstreamDB) -> None:
    seed(upstream, "orders", (5, 50))
    user = unique("req")
    proc = subprocess.Popen(["psql", "-X", "-d", gw.dsn(user, gw.token(user)), "-c",
                             "UPDATE orders SET amount = 51 WHERE id = 5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = pending_of(gw, user)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = gw.store()
    sessions = flush_wait(lambda: [s for s in store.sessions(user=user) if s["ended_at"]])
    assert sessions and sessions[0]["end_reason"] == "client disconnected"
    stmts = flush_wait(lambda: store.statements(sessions[0]["id"]))
    assert [(s["kind"], s["status"]) for s in stmts] == [("update", "lost")]
    assert f"client disconnected while waiting for review {r.id}" in stmts[0]["error_message"]
    assert review(gw, r.id).status == "pending"
    assert amount(upstream, "orders", 5) == 50
    # Approved later, the requester runs exactly that statement again, from any client: it runs, once.
    assert vote(gw, "approve", r.id, gw.token(unique("sre"), "sre")).returncode == 0
    with psycopg.connect(gw.dsn(user, gw.token(user)), autocommit=True) as conn:
        psycopg.ClientCursor(conn).execute("UPDATE orders SET amount = 51 WHERE id = 5")  # psql sends it so
    assert amount(upstream, "orders", 5) == 51 and review(gw, r.id).status == "executed"


def test_exec_prints_results_and_a_request_left_pending_runs_once_when_approved(
        gw: Gateway, upstream: UpstreamDB) -> None:
    seed(upstream, "orders", (6, 60), (7, 70))
    user, reviewer = unique("agent"), unique("sre")
    tok = gw.token(user)
    as_json = gw.cli("exec", "app", "--sql", "SELECT id, amount FROM orders WHERE id IN (6, 7) ORDER BY id",
                     "--token", tok, "--format", "json")
    assert json.loads(as_json.stdout) == [{"id": "6", "amount": "60"}, {"id": "7", "amount": "70"}]
    as_csv = gw.cli("exec", "app", "--sql", "SELECT id, NULL AS note FROM orders WHERE id = 6", "--token", tok,
                    "--format", "csv")
    assert as_csv.stdout == "id,note\n6,\n"
    table = gw.cli("exec", "app", "--sql", "SELECT 1 AS one; SELECT 'x' AS letter", "--token", tok)
    assert table.stdout.splitlines() == ["one", "---", "1", "(1 row)", "letter", "------", "x", "(1 row)"]
    refused = gw.cli("exec", "app", "--sql", "TRUNCATE orders", "--token", tok, check=False)
    assert refused.returncode == 1
    assert 'ERROR: 42501 wardgate: truncate statement denied by rule "no-truncate"' in refused.stderr

    update = "UPDATE orders SET amount = 61 WHERE id = 6"
    left = gw.cli("exec", "app", "--sql", update, "--token", tok, "--no-wait", check=False)
    assert left.returncode == 3, left.stderr
    r = pending_of(gw, user)
    assert f"held for review {r.id}" in left.stderr and amount(upstream, "orders", 6) == 60
    assert vote(gw, "approve", r.id, gw.token(reviewer, "sre")).returncode == 0
    # Not the approved statement: a request of its own.
    other = gw.cli("exec", "app", "--sql", update.replace("61", "62"), "--token", tok, "--no-wait", check=False)
    assert other.returncode == 3 and r.id not in other.stderr
    ran = gw.cli("exec", "app", "--sql", update, "--token", tok)
    assert ran.stdout.strip() == "UPDATE 1" and f"running review {r.id}, approved by {reviewer}" in ran.stderr
    assert amount(upstream, "orders", 6) == 61
    assert review(gw, r.id).status == "executed"
    again = gw.cli("exec", "app", "--sql", update, "--token", tok, "--no-wait", check=False)
    assert again.returncode == 3 and r.id not in again.stderr  # approved once, runs once: a new request
    # Another requester's identical statement is not covered by this approval either.
    stranger = unique("agent")
    theirs = gw.cli("exec", "app", "--sql", update, "--token", gw.token(stranger), "--no-wait", check=False)
    assert theirs.returncode == 3


def test_approvals_count_only_within_the_window_denials_at_any_time(gw: Gateway, upstream: UpstreamDB) -> None:
    user, reviewer = unique("req"), unique("sre")
    with psycopg.connect(gw.dsn(user, gw.token(user)), autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        t, out = in_thread(lambda: conn.execute("CREATE INDEX ON orders (amount)"))
        r = pending_of(gw, user)
        assert r.spec.window is not None
        early = vote(gw, "approve", r.id, gw.token(reviewer, "sre"))
        assert early.returncode == 1 and "count only within its window" in early.stderr
        assert vote(gw, "deny", r.id, gw.token(reviewer, "sre"), "--reason", "wait for the window").returncode == 0
        t.join(15)
        assert isinstance(out.get("error"), psycopg.errors.InsufficientPrivilege), out
        assert any(f"within daily {r.spec.window.start:%H:%M}" in n for n in notices), notices


def test_review_wait_off_answers_at_once_and_leaves_the_request(gw: Gateway, upstream: UpstreamDB) -> None:
    seed(upstream, "orders", (8, 80))
    user = unique("agent")
    with psycopg.connect(gw.dsn(user, gw.token(user), options="-c wardgate.reason=INC-7"), autocommit=True) as conn:
        conn.execute("SET wardgate.review_wait = off")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled) as err:
            conn.execute("UPDATE orders SET amount = 81 WHERE id = 8")
        assert time.monotonic() - started < 3
        r = pending_of(gw, user)
        assert r.reason == "INC-7"  # the startup option
        assert err.value.diag.message_detail == f"review: {r.id}"
        assert "not run (wardgate.review_wait is off)" in str(err.value)
        conn.execute("RESET wardgate.review_wait")
    assert amount(upstream, "orders", 8) == 80
    _, stmts = recorded(gw, user)
    held = [s for s in stmts if s["kind"] == "update"]
    assert [(s["status"], s["decision"], s["reason"]) for s in held] == [("held", "review", f"review {r.id} requested")]
