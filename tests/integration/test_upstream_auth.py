"""Upstream login through a real gateway: password methods, secrets handling, upstream TLS, and timeouts.

The shared server trusts every local login, so these tests start a private PostgreSQL cluster (one per module)
whose pg_hba.conf gives each role the method under test. Every login goes through a `wardgate serve`
process; clients are psycopg (what users run) and, where the SQLSTATE matters, pg8000: libpq does not expose
the SQLSTATE of a failed connection, pg8000 reports every field of the ErrorResponse.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pg8000.exceptions
import pg8000.native
import psycopg
import pytest
from psycopg import sql

from tests.conftest import Gateway, UpstreamDB, flush_wait, free_port, run_gateway
from tests.pgcluster import CertAuthority, PgCluster, PgClusterError, pg_cluster

DB = "wg_auth"
SCRAM = "wg_scram"  # pg_hba: scram-sha-256; password stored as SCRAM
SCRAM_UTF8 = "wg_scram_utf8"  # as SCRAM, with a password of non-ASCII letters, spaces and quotes
MD5 = "wg_md5"  # pg_hba: md5; password stored as md5 (else the server would answer md5 lines with SCRAM)
CLEAR = "wg_clear"  # pg_hba: password (cleartext on the wire)
TRUST = "wg_trust"  # pg_hba: trust; no password at all
TLS_ONLY = "wg_tls"  # pg_hba: hostssl scram-sha-256, and nothing for plain connections

HBA = [
    "local all postgres trust",
    f"hostssl all {TLS_ONLY} 127.0.0.1/32 scram-sha-256",
    f"host all {SCRAM},{SCRAM_UTF8} 127.0.0.1/32 scram-sha-256",
    f"host all {MD5} 127.0.0.1/32 md5",
    f"host all {CLEAR} 127.0.0.1/32 password",
    f"host all {TRUST} 127.0.0.1/32 trust",
]
# What the server's log_connections line says for each role ("connection authenticated: ... method=...").
SERVER_METHOD = {SCRAM: "scram-sha-256", SCRAM_UTF8: "scram-sha-256", MD5: "md5", CLEAR: "password",
                 TLS_ONLY: "scram-sha-256"}

CONNECT_TIMEOUT = 2.0
CLIENT_TIMEOUT = 20  # seconds a client waits for the gateway; well above every timeout under test


@dataclass(frozen=True)
class AuthCluster:
    """The private cluster (TLS on), its roles' passwords, and two CA files: the right one and a stranger."""

    cluster: PgCluster
    passwords: dict[str, str]
    ca_file: Path
    other_ca_file: Path

    def connection(self, role: str, host: str = "127.0.0.1", **extra: Any) -> dict[str, Any]:
        """The gateway's ``connections.app`` entry for ``role`` (password and TLS keys go in ``extra``)."""
        return {"upstream": f"postgresql://{role}@{host}:{self.cluster.port}/{DB}", "connect_timeout": "10s",
                **extra}


def _create_roles(cluster: PgCluster) -> dict[str, str]:
    passwords = {role: f"pw-{role}-{secrets.token_urlsafe(18)}" for role in (SCRAM, MD5, CLEAR, TLS_ONLY)}
    passwords[SCRAM_UTF8] = f"Pässwörd mit €, 'quotes' \"and\" spaces {secrets.token_urlsafe(12)}"
    with cluster.connect(autocommit=True) as admin:
        for role, password in passwords.items():
            admin.execute("SELECT set_config('password_encryption', %s, false)",
                          ("md5" if role == MD5 else "scram-sha-256",))
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                             sql.Literal(password)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(TRUST)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    return passwords


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthCluster]:
    certs = tmp_path_factory.mktemp("upstream-ca")
    ca = CertAuthority.create("wardgate test CA")
    other = CertAuthority.create("wardgate unrelated CA")
    try:
        with pg_cluster(hba=HBA, ca=ca) as cluster:
            try:
                passwords = _create_roles(cluster)
            except psycopg.Error as exc:
                pytest.fail(f"the private cluster started but its roles could not be created: {exc}",
                            pytrace=False)
            yield AuthCluster(cluster, passwords, ca.write_cert(certs / "ca.pem"),
                              other.write_cert(certs / "other-ca.pem"))
    except PgClusterError as exc:
        pytest.fail(f"cannot start the private PostgreSQL cluster these tests need: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def plain_pg() -> Iterator[PgCluster]:
    """A second private cluster with ssl=off, for sslmode=require against a server without TLS."""
    try:
        with pg_cluster(hba=["local all postgres trust", "host all all 127.0.0.1/32 reject"]) as cluster:
            yield cluster
    except PgClusterError as exc:
        pytest.fail(f"cannot start the private PostgreSQL cluster (ssl off) these tests need: {exc}",
                    pytrace=False)


# --- helpers ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def gateway(tmp: Path, connection: dict[str, Any], env: dict[str, str] | None = None) -> Iterator[Gateway]:
    # run_gateway builds connections.app from an UpstreamDB on the shared server; ``upstream`` in
    # ``connection`` replaces that URL, so the placeholder's names are never used.
    with run_gateway(tmp, UpstreamDB(DB, "unused"), connection=connection, env=env) as gw:
        yield gw


def token(gw: Gateway, user: str, env: dict[str, str] | None = None) -> str:
    # Gateway.token() loads the config in this process, which resolves ``password: env:NAME`` here as well;
    # the variable is set only for that call, so the gateway process gets it from run_gateway's env= alone.
    with mock.patch.dict(os.environ, env or {}):
        return gw.token(user)


def ended_sessions(gw: Gateway, user: str, count: int) -> list[dict[str, Any]]:
    store = gw.store()
    try:
        def ended() -> list[dict[str, Any]]:
            done = [s for s in store.sessions(user=user) if s["ended_at"]]
            return done if len(done) >= count else []

        sessions: list[dict[str, Any]] = flush_wait(ended)
        assert len(sessions) == count, f"expected {count} ended session(s) for {user}: {store.sessions(user=user)}"
        for s in sessions:
            s["statement_texts"] = [st["text"] for st in store.statements(s["id"])]
        return sessions
    finally:
        store.close()


def login_and_check(gw: Gateway, user: str, expect_role: str, env: dict[str, str] | None = None) -> bool:
    """Log in through the gateway with psycopg, check who we are upstream and that the session is recorded.

    Returns whether the gateway's upstream connection is encrypted (from the server's pg_stat_ssl).
    """
    tok = token(gw, user, env)
    with psycopg.connect(gw.dsn(user, tok, connect_timeout=str(CLIENT_TIMEOUT)),
                         application_name="upstream-auth") as conn:
        assert conn.execute("SELECT current_user").fetchone() == (expect_role,)
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row is not None
    [session] = ended_sessions(gw, user, 1)
    assert session["connection"] == "app"
    assert session["application_name"] == "upstream-auth"
    assert session["end_reason"]  # exactly which: see test_terminate_then_upstream_close_is_a_clean_end
    assert "SELECT current_user" in session["statement_texts"]
    return bool(row[0])


def assert_server_authenticated(pg: AuthCluster, role: str) -> None:
    """The server's own log says which method it used: proof the pg_hba line under test was the one applied."""
    line = f'connection authenticated: identity="{role}" method={SERVER_METHOD[role]}'
    assert flush_wait(lambda: line in pg.cluster.log(), timeout=5), (
        f"the upstream did not log {line!r}:\n{pg.cluster.log()[-3000:]}")


@dataclass(frozen=True)
class LoginFailure:
    sqlstate: str
    message: str  # the ErrorResponse's message, as pg8000 reports it
    elapsed: float  # seconds from the pg8000 connect to its error
    psycopg_text: str  # what a psycopg (libpq) user sees; "" when not tried


def failed_login(gw: Gateway, user: str, *, with_psycopg: bool = True) -> LoginFailure:
    """Log in through the gateway expecting a refusal: with psycopg (optional) and then with pg8000."""
    tok = token(gw, user)
    psycopg_text = ""
    if with_psycopg:
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(gw.dsn(user, tok, connect_timeout=str(CLIENT_TIMEOUT))).close()
        psycopg_text = str(info.value)
    # The gateway's self-signed certificate (it names 127.0.0.1) is the trust anchor for the client side.
    ctx = ssl.create_default_context(cafile=str(gw.workdir / "data" / "gateway.crt"))
    started = time.monotonic()
    with pytest.raises(pg8000.exceptions.DatabaseError) as err:
        pg8000.native.Connection(user, host="127.0.0.1", port=gw.port, database="app", password=tok,
                                 ssl_context=ctx, timeout=CLIENT_TIMEOUT).close()
    elapsed = time.monotonic() - started
    fields = err.value.args[0]
    assert isinstance(fields, dict), f"expected a server ErrorResponse, got {err.value!r}"
    return LoginFailure(str(fields.get("C")), str(fields.get("M")), elapsed, psycopg_text)


def assert_upstream_failure(gw: Gateway, user: str, failure: LoginFailure, *, sessions: int = 2) -> None:
    """08006 naming connection "app", and every session of ``user`` ended with that failure as its reason."""
    assert failure.sqlstate == "08006", failure
    assert 'connection "app"' in failure.message, failure
    if failure.psycopg_text:
        assert failure.message in failure.psycopg_text
    for s in ended_sessions(gw, user, sessions):
        assert s["end_reason"], s
        assert s["end_reason"] == f"upstream failed: {failure.message}", s


def store_dump(gw: Gateway) -> str:
    """Every row of every table in the gateway's SQLite store, as text."""
    path = gw.store_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert {"sessions", "events", "statements"} <= set(tables), tables
        dump = {t: db.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
    assert dump["sessions"], "the store holds no session: nothing to check for secrets"
    return repr(dump)


def assert_secret_absent(gw: Gateway, secret: str, *texts: str) -> None:
    assert secret not in gw.log(), "the upstream password appears in the gateway log"
    for text in texts:
        assert secret not in text, "the upstream password appears in what the client was told"
    assert secret not in store_dump(gw), "the upstream password appears in the audit store"


@contextlib.contextmanager
def silent_upstream(answer: bytes | None) -> Iterator[int]:
    """A local port that never completes a PostgreSQL login; yields the port.

    ``answer`` None: a listening socket nobody accepts on (the kernel completes the TCP handshake, nothing is
    ever read). Otherwise each connection is accepted, its first 8 bytes (the SSLRequest) read, ``answer``
    sent, and then nothing more until the test is over.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(8)
                conn.sendall(answer or b"")

    thread = threading.Thread(target=serve, daemon=True) if answer is not None else None
    if thread is not None:
        thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        if thread is not None:
            thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


# --- password methods -------------------------------------------------------------------------------------------


def test_private_cluster_stores_passwords_as_intended(pg: AuthCluster) -> None:
    with pg.cluster.connect() as admin:
        stored = dict(admin.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE 'wg\\_%'")
                      .fetchall())
    assert stored[MD5].startswith("md5")
    for role in (SCRAM, SCRAM_UTF8, CLEAR, TLS_ONLY):
        assert stored[role].startswith("SCRAM-SHA-256$"), role
    assert stored[TRUST] is None


def test_scram_with_password_from_env(pg: AuthCluster, tmp_path: Path) -> None:
    var = f"WG_TEST_UPSTREAM_PW_{secrets.token_hex(4).upper()}"
    assert var not in os.environ
    env = {var: pg.passwords[SCRAM]}
    with gateway(tmp_path, pg.connection(SCRAM, password=f"env:{var}"), env=env) as gw:
        assert login_and_check(gw, "alice", SCRAM, env) is False
    assert_server_authenticated(pg, SCRAM)
    assert_secret_absent(gw, pg.passwords[SCRAM])


@pytest.mark.parametrize("role", [SCRAM, SCRAM_UTF8])
def test_scram_with_password_from_file(pg: AuthCluster, tmp_path: Path, role: str) -> None:
    secret_file = tmp_path / "upstream-password"
    secret_file.write_text(pg.passwords[role] + "\n", encoding="utf-8")  # a trailing newline, as editors leave
    secret_file.chmod(0o600)
    with gateway(tmp_path / "gw", pg.connection(role, password=f"file:{secret_file}")) as gw:
        assert login_and_check(gw, "bob", role) is False
    assert_server_authenticated(pg, role)
    assert_secret_absent(gw, pg.passwords[role])


def test_md5(pg: AuthCluster, tmp_path: Path) -> None:
    env = {"WG_TEST_MD5_PW": pg.passwords[MD5]}
    with gateway(tmp_path, pg.connection(MD5, password="env:WG_TEST_MD5_PW"), env=env) as gw:
        assert login_and_check(gw, "carol", MD5, env) is False
    assert_server_authenticated(pg, MD5)
    assert_secret_absent(gw, pg.passwords[MD5])


def test_cleartext_password_method(pg: AuthCluster, tmp_path: Path) -> None:
    env = {"WG_TEST_CLEAR_PW": pg.passwords[CLEAR]}
    with gateway(tmp_path, pg.connection(CLEAR, password="env:WG_TEST_CLEAR_PW"), env=env) as gw:
        assert login_and_check(gw, "dave", CLEAR, env) is False
    assert_server_authenticated(pg, CLEAR)
    assert_secret_absent(gw, pg.passwords[CLEAR])


def test_trust_needs_no_password(pg: AuthCluster, tmp_path: Path) -> None:
    conn = pg.connection(TRUST)
    assert "password" not in conn
    with gateway(tmp_path, conn) as gw:
        assert login_and_check(gw, "erin", TRUST) is False
    log = pg.cluster.log()
    assert f"connection authorized: user={TRUST} database={DB}" in log
    assert f'identity="{TRUST}"' not in log  # trust authenticates nobody: no password method was used


# --- failures ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [SCRAM, MD5, CLEAR])
def test_wrong_password_is_a_clear_08006_and_never_leaks(pg: AuthCluster, tmp_path: Path, role: str) -> None:
    wrong = f"wrong-{secrets.token_urlsafe(18)}"
    env = {"WG_TEST_WRONG_PW": wrong}
    with gateway(tmp_path, pg.connection(role, password="env:WG_TEST_WRONG_PW"), env=env) as gw:
        with mock.patch.dict(os.environ, env):
            failure = failed_login(gw, "frank")
        assert "refused the login" in failure.message
        assert "password authentication failed" in failure.message
        assert_upstream_failure(gw, "frank", failure)
    assert_secret_absent(gw, wrong, failure.message, failure.psycopg_text)
    assert_secret_absent(gw, pg.passwords[role], failure.message, failure.psycopg_text)


@pytest.mark.parametrize(("role", "method"), [(SCRAM, "SCRAM"), (MD5, "md5"), (CLEAR, "password")])
def test_password_method_without_configured_password(pg: AuthCluster, tmp_path: Path, role: str,
                                                     method: str) -> None:
    with gateway(tmp_path, pg.connection(role)) as gw:
        failure = failed_login(gw, "grace")
        assert f"asks for {method} authentication but no password is configured" in failure.message
        assert_upstream_failure(gw, "grace", failure)


# --- upstream TLS -----------------------------------------------------------------------------------------------


def test_sslmode_require_reaches_a_hostssl_only_role(pg: AuthCluster, tmp_path: Path) -> None:
    env = {"WG_TEST_TLS_PW": pg.passwords[TLS_ONLY]}
    conn = pg.connection(TLS_ONLY, password="env:WG_TEST_TLS_PW", sslmode="require")
    with gateway(tmp_path, conn, env=env) as gw:
        assert login_and_check(gw, "heidi", TLS_ONLY, env) is True
    assert_server_authenticated(pg, TLS_ONLY)
    assert_secret_absent(gw, pg.passwords[TLS_ONLY])


def test_hostssl_only_role_is_refused_without_tls(pg: AuthCluster, tmp_path: Path) -> None:
    """The control for the test above: without TLS the same role has no pg_hba entry."""
    env = {"WG_TEST_TLS_PW": pg.passwords[TLS_ONLY]}
    conn = pg.connection(TLS_ONLY, password="env:WG_TEST_TLS_PW", sslmode="disable")
    with gateway(tmp_path, conn, env=env) as gw:
        with mock.patch.dict(os.environ, env):
            failure = failed_login(gw, "ivan")
        assert "no pg_hba.conf entry" in failure.message and "no encryption" in failure.message
        assert_upstream_failure(gw, "ivan", failure)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_sslmode_verify_full_with_the_right_ca(pg: AuthCluster, tmp_path: Path, host: str) -> None:
    env = {"WG_TEST_TLS_PW": pg.passwords[TLS_ONLY]}
    conn = pg.connection(TLS_ONLY, host=host, password="env:WG_TEST_TLS_PW", sslmode="verify-full",
                         sslrootcert=str(pg.ca_file))
    with gateway(tmp_path, conn, env=env) as gw:
        assert login_and_check(gw, "judy", TLS_ONLY, env) is True


def test_sslmode_verify_full_with_another_ca_fails(pg: AuthCluster, tmp_path: Path) -> None:
    env = {"WG_TEST_TLS_PW": pg.passwords[TLS_ONLY]}
    conn = pg.connection(TLS_ONLY, password="env:WG_TEST_TLS_PW", sslmode="verify-full",
                         sslrootcert=str(pg.other_ca_file))
    with gateway(tmp_path, conn, env=env) as gw:
        with mock.patch.dict(os.environ, env):
            failure = failed_login(gw, "ken")
        assert "TLS to the upstream" in failure.message and "failed" in failure.message, failure
        assert "CERTIFICATE_VERIFY_FAILED" in failure.message, failure
        assert_upstream_failure(gw, "ken", failure)
    assert_secret_absent(gw, pg.passwords[TLS_ONLY], failure.message, failure.psycopg_text)


def test_sslmode_require_against_a_server_without_tls(plain_pg: PgCluster, tmp_path: Path) -> None:
    with plain_pg.connect() as admin:
        assert admin.execute("SHOW ssl").fetchone() == ("off",)
    conn = {"upstream": plain_pg.url("nobody", "postgres"), "sslmode": "require", "connect_timeout": "10s"}
    with gateway(tmp_path, conn) as gw:
        failure = failed_login(gw, "leo")
        assert "does not accept TLS (sslmode=require)" in failure.message, failure
        assert_upstream_failure(gw, "leo", failure)


# --- unreachable and silent upstreams ---------------------------------------------------------------------------


def test_closed_port_fails_fast(tmp_path: Path) -> None:
    port = free_port()  # bound then released: nothing listens there
    conn = {"upstream": f"postgresql://nobody@127.0.0.1:{port}/db", "connect_timeout": f"{CONNECT_TIMEOUT:g}s"}
    with gateway(tmp_path, conn) as gw:
        failure = failed_login(gw, "mallory")
        assert failure.elapsed < CONNECT_TIMEOUT + 2, failure
        assert "could not reach the upstream" in failure.message, failure
        assert_upstream_failure(gw, "mallory", failure)


@pytest.mark.parametrize(("sslmode", "answer"), [("disable", None), ("require", b"S")],
                         ids=["no-answer-to-startup", "tls-handshake-never-starts"])
def test_silent_upstream_times_out_after_connect_timeout(tmp_path: Path, sslmode: str,
                                                         answer: bytes | None) -> None:
    with silent_upstream(answer) as port:
        conn = {"upstream": f"postgresql://nobody@127.0.0.1:{port}/db", "sslmode": sslmode,
                "connect_timeout": f"{CONNECT_TIMEOUT:g}s"}
        with gateway(tmp_path, conn) as gw:
            failure = failed_login(gw, "niaj", with_psycopg=False)
            assert CONNECT_TIMEOUT - 0.25 <= failure.elapsed < CONNECT_TIMEOUT + 2, failure
            assert f"within {CONNECT_TIMEOUT:g}s" in failure.message, failure
            assert_upstream_failure(gw, "niaj", failure, sessions=1)


# --- session end ------------------------------------------------------------------------------------------------


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def _read_messages(sock: ssl.SSLSocket, until: bytes | None, deadline: float) -> list[tuple[bytes, bytes]]:
    """Backend messages until one of kind ``until`` (None: until the peer closes or ``deadline``)."""
    buf = b""
    out: list[tuple[bytes, bytes]] = []
    while time.monotonic() < deadline:
        while len(buf) >= 5 and len(buf) >= 1 + struct.unpack("!I", buf[1:5])[0]:
            size = struct.unpack("!I", buf[1:5])[0]
            out.append((buf[:1], buf[5:1 + size]))
            buf = buf[1 + size:]
            if until is not None and out[-1][0] == until:
                return out
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            break
        buf += chunk
    assert until is None, f"no {until!r} message arrived; got {out}"
    return out


def test_terminate_then_upstream_close_is_a_clean_end(pg: AuthCluster, tmp_path: Path) -> None:
    """A client that sends Terminate and then waits for the server to hang up (as the protocol allows).

    The upstream, told to terminate, closes its side first. That is the normal end of the session: the
    client must not be sent an error after its Terminate, and the session must end as "client terminated".
    libpq closes its socket right after Terminate, which only makes this ordering a race; here it is certain.
    """
    with gateway(tmp_path, pg.connection(TRUST)) as gw:
        tok = token(gw, "olivia")
        ctx = ssl.create_default_context(cafile=str(gw.workdir / "data" / "gateway.crt"))
        deadline = time.monotonic() + CLIENT_TIMEOUT
        with socket.create_connection(("127.0.0.1", gw.port), timeout=CLIENT_TIMEOUT) as raw:
            raw.sendall(struct.pack("!II", 8, 80877103))  # SSLRequest
            assert raw.recv(1) == b"S"
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                params = b"user\0olivia\0database\0app\0application_name\0raw-terminate\0\0"
                sock.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
                [(kind, body)] = _read_messages(sock, b"R", deadline)
                assert (kind, body) == (b"R", struct.pack("!I", 3))  # cleartext: the token is the password
                sock.sendall(_message(b"p", tok.encode() + b"\0"))
                login = _read_messages(sock, b"Z", deadline)
                assert b"E" not in [k for k, _ in login], login
                sock.sendall(_message(b"Q", b"SELECT current_user\0"))
                result = _read_messages(sock, b"Z", deadline)
                assert any(k == b"D" and TRUST.encode() in b for k, b in result), result
                sock.sendall(_message(b"X", b""))
                after = _read_messages(sock, None, time.monotonic() + 3)
        [session] = ended_sessions(gw, "olivia", 1)
    observed = {"sent after Terminate": after, "end_reason": session["end_reason"]}
    assert observed == {"sent after Terminate": [], "end_reason": "client terminated"}
