"""The quick start in one test: a token, psycopg through the gateway, and the session in the store."""

from __future__ import annotations

import psycopg

from tests.conftest import Gateway, UpstreamDB, flush_wait


def test_query_through_gateway_is_recorded(gateway: Gateway, upstream: UpstreamDB) -> None:
    token = gateway.token("smoke-user")
    with psycopg.connect(gateway.dsn("smoke-user", token), application_name="smoke") as conn:
        assert conn.execute("SELECT count(*) FROM customers WHERE id <= %s", (10,)).fetchone() == (10,)
    store = gateway.store()
    sessions = flush_wait(lambda: [s for s in store.sessions(user="smoke-user") if s["ended_at"]])
    assert len(sessions) == 1
    s = sessions[0]
    assert s["application_name"] == "smoke" and s["connection"] == "app" and s["groups"] == ["eng"]
    stmts = store.statements(s["id"])
    texts = [st["text"] for st in stmts]
    assert "SELECT count(*) FROM customers WHERE id <= $1" in texts
    assert token not in gateway.log()


def test_application_name_set_after_login_is_recorded(gateway: Gateway) -> None:
    token = gateway.token("renamer")
    with psycopg.connect(gateway.dsn("renamer", token), application_name="first", autocommit=True) as conn:
        conn.execute("SET application_name = 'second'")
        conn.execute("select 1")
    store = gateway.store()
    (session,) = flush_wait(lambda: [s for s in store.sessions(user="renamer") if s["ended_at"]])
    assert session["application_name"] == "second"
