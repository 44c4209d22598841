"""Hostile and broken clients get 08P01 and a closed connection; the gateway goes on serving everyone else."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, UpstreamDB, flush_wait, run_gateway, unverified_tls
from wardgate.protocols.postgres import decode, encode


class Raw:
    """A deliberately dumb client speaking bytes, to send what real drivers never would."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def message(self) -> tuple[str, bytes] | None:
        if not self._fill(5):
            return None
        (length,) = struct.unpack("!i", self.buf[1:5])
        if not self._fill(1 + length):
            return None
        frame, self.buf = self.buf[: 1 + length], self.buf[1 + length :]
        return chr(frame[0]), frame

    def until(self, kind: str) -> list[tuple[str, bytes]]:
        seen = []
        while True:
            msg = self.message()
            assert msg is not None, f"connection closed before {kind!r}; saw {[k for k, _ in seen]}"
            seen.append(msg)
            if msg[0] == kind:
                return seen

    def error(self) -> dict[str, str]:
        msg = self.message()
        assert msg is not None and msg[0] == "E", f"expected an ErrorResponse, got {msg!r}"
        return decode.error_fields(msg[1]).fields

    def closed(self) -> bool:
        try:
            return self.message() is None
        except OSError:
            return True

    def login(self, user: str, token: str, **params: str) -> None:
        self.send(encode.startup_message({"user": user, "database": "app", **params}))
        kind, _ = self.message() or ("?", b"")
        assert kind == "R"
        self.send(encode.password_message(token.encode()))
        self.until("Z")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    extra = {"listen": {"allow_plaintext": True}, "limits": {"max_message_bytes": 1 << 20, "auth_timeout": "2s"}}
    with run_gateway(tmp_path_factory.mktemp("bad"), upstream, extra=extra) as g:
        yield g


@pytest.fixture
def bystander(gw: Gateway) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A well-behaved session open across each test: it must keep working."""
    conn = psycopg.connect(gw.dsn("bystander", gw.token("bystander")))
    assert conn.execute("select 1").fetchone() == (1,)
    yield conn
    assert conn.execute("select count(*) from customers").fetchone() == (50,)
    conn.close()


def _assert_violation(raw: Raw) -> None:
    err = raw.error()
    assert err["C"] == "08P01" and err["S"] == "FATAL"
    assert raw.closed()


def test_startup_length_too_small(gw: Gateway, bystander: object) -> None:
    raw = Raw(gw.port)
    raw.send(struct.pack("!i", 4) + b"\0\0\0\0")
    _assert_violation(raw)


def test_startup_too_large(gw: Gateway, bystander: object) -> None:
    raw = Raw(gw.port)
    raw.send(struct.pack("!ii", 20_000, 196608))
    _assert_violation(raw)


def test_unsupported_protocol_version(gw: Gateway, bystander: object) -> None:
    raw = Raw(gw.port)
    raw.send(struct.pack("!ii", 8, 2 << 16))
    err = raw.error()
    assert err["C"] == "08P01" and "unsupported frontend protocol 2.0" in err["M"]


def test_data_after_ssl_request_is_refused(gw: Gateway, bystander: object) -> None:
    raw = Raw(gw.port)
    raw.send(encode.ssl_request() + encode.startup_message({"user": "x"}))
    _assert_violation(raw)


def test_wrong_message_instead_of_password(gw: Gateway, bystander: object) -> None:
    raw = Raw(gw.port)
    raw.send(encode.startup_message({"user": "u", "database": "app"}))
    assert raw.message() is not None
    raw.send(encode.query("select 1"))
    _assert_violation(raw)


def test_silent_client_times_out(gw: Gateway, bystander: object) -> None:
    raw = Raw(gw.port)
    start = time.monotonic()
    err = raw.error()
    assert err["C"] == "08P01" and "timed out" in err["M"]
    assert 1.5 < time.monotonic() - start < 6
    assert raw.closed()


@pytest.mark.parametrize(
    "payload",
    [
        b"Q" + struct.pack("!i", 1 << 24),  # larger than max_message_bytes
        b"Q" + struct.pack("!i", 2),  # shorter than its own header
        b"B" + struct.pack("!i", 8) + b"p\0s\0",  # Bind cut short
        b"Q" + struct.pack("!i", 9) + b"abcd\xff",  # unterminated query string
    ],
    ids=["oversized", "undersized", "truncated-bind", "unterminated"],
)
def test_malformed_message_after_login(gw: Gateway, bystander: object, payload: bytes) -> None:
    user = "raw-" + payload[:1].decode() + str(len(payload))
    raw = Raw(gw.port)
    raw.login(user, gw.token(user))
    raw.send(payload)
    _assert_violation(raw)
    store = gw.store()
    sessions = flush_wait(lambda: [s for s in store.sessions(user=user) if s["ended_at"]])
    assert sessions and sessions[0]["end_reason"].startswith("protocol violation")


def test_client_vanishing_mid_result_ends_session_and_upstream(gw: Gateway, upstream: UpstreamDB,
                                                               bystander: object) -> None:
    user = "vanisher"
    app = "wg-vanish-test"
    raw = Raw(gw.port)
    raw.login(user, gw.token(user), application_name=app)
    raw.send(encode.query("select g, repeat('x', 200) from generate_series(1, 3000000) g"))
    first = raw.message()
    assert first is not None and first[0] == "T"
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # reset, mid-result

    def backends() -> int:
        with upstream.connect() as conn:
            row = conn.execute("select count(*) from pg_stat_activity where application_name = %s", (app,)).fetchone()
            return int(row[0]) if row else -1

    assert flush_wait(lambda: backends() == 0, timeout=15)
    store = gw.store()
    (session,) = flush_wait(lambda: [s for s in store.sessions(user=user) if s["ended_at"]])
    assert session["end_reason"] == "client disconnected"
    (stmt,) = store.statements(session["id"])
    assert stmt["status"] == "lost" and stmt["kind"] == "select"


def test_tls_handshake_garbage(gw: Gateway, bystander: object) -> None:
    raw = Raw(gw.port)
    raw.send(encode.ssl_request())
    assert raw.sock.recv(1) == b"S"
    raw.send(b"\x16\x03\x01 this is not a client hello" * 10)
    assert raw.closed()


def test_tls_then_startup_works_with_a_real_tls_stack(gw: Gateway, bystander: object) -> None:
    raw = Raw(gw.port)
    raw.send(encode.ssl_request())
    assert raw.sock.recv(1) == b"S"
    ctx = unverified_tls()
    raw.sock = ctx.wrap_socket(raw.sock)
    raw.login("tlsraw", gw.token("tlsraw"))
    raw.send(encode.query("select 41 + 1"))
    kinds = [k for k, _ in raw.until("Z")]
    assert kinds == ["T", "D", "C", "Z"]


def test_gssenc_is_declined_and_the_client_may_go_on(gw: Gateway, bystander: object) -> None:
    raw = Raw(gw.port)
    raw.send(struct.pack("!ii", 8, 80877104))
    assert raw.sock.recv(1) == b"N"
    raw.login("gss-then-plain", gw.token("gss-then-plain"))
    raw.send(encode.query("select 1"))
    assert [k for k, _ in raw.until("Z")] == ["T", "D", "C", "Z"]


def test_upstream_terminated_backend_reaches_the_client_once(gw: Gateway, bystander: object) -> None:
    user = "terminated"
    app = "wg-terminate-test"
    raw = Raw(gw.port)
    raw.login(user, gw.token(user), application_name=app)
    with psycopg.connect("host=127.0.0.1 port=5432 dbname=postgres user=postgres", autocommit=True) as admin:
        row = admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where application_name = %s",
                            (app,)).fetchone()
        assert row == (True,)
    err = raw.error()
    assert err["C"] == "57P01" and err["S"] == "FATAL"  # the server's own message, relayed
    assert raw.closed()  # and nothing after it: no second FATAL from the gateway
    store = gw.store()
    (session,) = flush_wait(lambda: [s for s in store.sessions(user=user) if s["ended_at"]])
    assert session["end_reason"] == "upstream ended the session"
