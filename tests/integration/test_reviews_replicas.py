"""Reviews across replicas of one PostgreSQL store: a statement held on one gateway is released by an approval
given through another's configuration, and a request outlives the gateway that created it (a restart): once
approved, the requester runs it, once, through any replica; a just-in-time grant likewise."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.conftest import UpstreamDB, flush_wait, free_port, run_gateway, unique
from wardgate.store import Store
from wardgate.store.reviews import ReviewStore

RULES = [{"name": "ledger-review", "action": "review", "when": {"kinds": ["update"], "tables": ["ledger"]},
          "review": {"approvers": ["sre"], "expires_after": "60s"}}]
EXTRA: dict[str, Any] = {"rules": RULES}
# app is open to dba (the requester here) and takes access requests from others
CONN: dict[str, Any] = {"allow_groups": ["dba"], "access": {"review": {"approvers": ["sre"]}}}


def test_held_on_a_released_through_b_and_a_request_outlives_a_restart(
        pg_store_url: str, upstream: UpstreamDB, tmp_path: Path) -> None:
    with upstream.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ledger (id int PRIMARY KEY, amount int)")
        conn.execute("INSERT INTO ledger VALUES (1, 10), (2, 20) ON CONFLICT DO NOTHING")
    rs = ReviewStore(Store(pg_store_url))
    user, reviewer = unique("req"), unique("sre")

    def pending() -> Any:
        return flush_wait(lambda: next((r for r in rs.list("pending") if r.requester == user), None), 15)

    api_port = free_port()
    with (run_gateway(tmp_path / "a", upstream, store_url=pg_store_url, extra=EXTRA, connection=CONN) as a,
          run_gateway(tmp_path / "b", upstream, store_url=pg_store_url, connection=CONN,
                      extra={**EXTRA, "listen": {"api": f"127.0.0.1:{api_port}"}}) as b):
        with psycopg.connect(a.dsn(user, a.token(user, "dba")), autocommit=True) as conn:
            out: dict[str, Any] = {}
            t = threading.Thread(target=lambda: out.setdefault(
                "rows", conn.execute("UPDATE ledger SET amount = 11 WHERE id = 1").rowcount), daemon=True)
            t.start()
            r = pending()
            sessions = flush_wait(lambda: a.store().sessions(user=user))  # the session record ships asynchronously
            assert r is not None and sessions and r.gateway == sessions[0]["gateway"] and r.session_id
            # the approval goes through replica b's HTTP API; the statement waits on replica a
            res = httpx.post(f"https://127.0.0.1:{api_port}/api/v1/reviews/{r.id}/approve", json={},
                             verify=b.tls_context(), timeout=20,
                             headers={"Authorization": f"Bearer {b.token(reviewer, 'sre')}"})
            assert res.status_code == 200 and res.json()["status"] == "approved", res.text
            t.join(15)
            assert out.get("rows") == 1
        # A just-in-time grant, started through b.
        granted = unique("eng")
        rid = b.cli("access", "request", "app", "--for", "1h", "--reason", "r", "--token",
                    b.token(granted)).stdout.split()[2].rstrip(":")
        b.cli("reviews", "approve", rid, "--token", b.token(reviewer, "sre"))
        psycopg.connect(b.dsn(granted, b.token(granted))).close()
        # A request left pending by a client on b, then b stops.
        statement = "UPDATE ledger SET amount = 21 WHERE id = 2"
        left = b.cli("exec", "app", "--sql", statement, "--token", b.token(user, "dba"), "--no-wait", check=False)
        assert left.returncode == 3, left.stderr
        second = pending()
        assert second is not None
    # Both gateways are gone; the request is still in the store, and a new gateway serves it.
    with run_gateway(tmp_path / "c", upstream, store_url=pg_store_url, extra=EXTRA, connection=CONN) as c:
        assert [x.id for x in rs.list("pending") if x.requester == user] == [second.id]
        psycopg.connect(c.dsn(granted, c.token(granted))).close()  # the grant outlives its gateway too
        c.cli("reviews", "approve", second.id, "--token", c.token(reviewer, "sre"))
        ran = c.cli("exec", "app", "--sql", statement, "--token", c.token(user, "dba"))
        assert ran.stdout.strip() == "UPDATE 1" and f"running review {second.id}" in ran.stderr
    with upstream.connect() as conn:
        assert conn.execute("SELECT amount FROM ledger ORDER BY id").fetchall() == [(11,), (21,)]
    after = rs.get(second.id)
    assert after is not None and after.status == "executed"
