"""CancelRequest: the client holds a gateway key; only that key cancels, and it reaches the real backend."""

from __future__ import annotations

import socket
import threading
import time

import psycopg
import pytest

from tests.conftest import Gateway, flush_wait
from wardgate.protocols.postgres import encode


def test_cancel_stops_a_long_query(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("canceller", gateway.token("canceller"))) as conn:
        threading.Timer(0.5, conn.cancel_safe).start()
        start = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(30)")
        assert time.monotonic() - start < 10
        conn.rollback()
        assert conn.execute("select 1").fetchone() == (1,)  # the session goes on
    store = gateway.store()
    session = flush_wait(lambda: [s for s in store.sessions(user="canceller") if s["ended_at"]])[0]
    sleeps = [s for s in store.statements(session["id"]) if s["text"] == "select pg_sleep($1)"]
    assert sleeps[0]["status"] == "error" and sleeps[0]["sqlstate"] == "57014"


def test_forged_cancel_key_does_nothing(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn("victim", gateway.token("victim"))) as conn:
        pid = conn.info.backend_pid  # the gateway's key, not the upstream's
        with psycopg.connect(gateway.dsn("victim", gateway.token("victim"))) as other:
            assert other.execute("select pg_backend_pid()").fetchone() != (pid,)

        def forge() -> None:
            time.sleep(0.3)
            for secret in (0, 1, -1, 123456):
                with socket.create_connection(("127.0.0.1", gateway.port)) as s:
                    s.sendall(encode.cancel_request(pid, secret))
                    s.recv(1)

        t = threading.Thread(target=forge)
        t.start()
        assert conn.execute("select pg_sleep(1.5), 'finished'").fetchone() == ("", "finished")
        t.join()
    assert "ignored a cancel request with an unknown key" in gateway.log()
