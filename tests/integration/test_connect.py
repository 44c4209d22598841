"""`wardgate connect`: a local listener in front of a real gateway that trusts a real OIDC provider (nanoidp).

Clients (psql, psycopg, asyncpg) connect to the listener without a password; the listener logs in to the gateway
over TLS with the stored login's token and refreshes it, so a connection after the access token's expiry still
opens, and a session opened before it goes on. The listener runs as a subprocess, as on a laptop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import asyncpg
import psycopg
import pytest

from tests.conftest import WARDGATE, Gateway, UpstreamDB, flush_wait, free_port, run_gateway
from tests.oidc_idp import IdPError, IdPUser, NanoIdP, running_idp
from wardgate.login import profile as profiles
from wardgate.login.connect import (
    PORT_BASE,
    PORT_SPAN,
    Listener,
    default_port,
    parse_proc_net_tcp,
    socket_owner,
)
from wardgate.login.flows import apply_tokens
from wardgate.login.profile import Profile

TTL = 6  # seconds: access tokens expire during the test, so that the listener must refresh them
SCOPE = "openid profile offline_access"
_BIN = Path(sys.executable).with_name("wardgate")
CONNECT = [str(_BIN)] if _BIN.exists() else WARDGATE


# --- /proc/net/tcp, without servers -----------------------------------------------------------------------------------

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1628 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 7070 1 0 100 0 0 10 0
   9: 0100007F:99E4 0100007F:4E20 01 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0 20 4 30 10 -1
  10: 0100007F:99F2 0100007F:4E20 06 00000000:00000000 03:00000DF2 00000000     0        0 0 3 0
"""
_V4_MAPPED = "0000000000000000FFFF00000100007F"  # ::ffff:127.0.0.1, 32-bit words in little-endian order
_V6_LOOPBACK = "00000000000000000000000001000000"  # ::1
TCP6 = "\n".join([
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
    "tm->when retrnsmt   uid  timeout inode",
    f"   0: {_V4_MAPPED}:D431 {_V4_MAPPED}:4E20 01 00000000:00000000 00:00000000 00000000  1001        0 999 1 0",
    f"   1: {_V6_LOOPBACK}:1F90 {'0' * 32}:0000 0A 00000000:00000000 00:00000000 00000000     0        0 998 1 0",
])


def test_proc_net_tcp_parsing() -> None:
    listen, est, tw = parse_proc_net_tcp(TCP, "little")
    assert str(est.local[0]) == "127.0.0.1" and est.local[1] == 0x99E4 and est.remote[1] == 20000
    assert est.state == 0x01 and est.uid == 1000
    assert listen.state == 0x0A and listen.uid == 106 and str(listen.remote[0]) == "0.0.0.0"
    assert tw.state == 0x06
    mapped, lo6 = parse_proc_net_tcp(TCP6, "little")
    assert str(mapped.local[0]) == "127.0.0.1" and mapped.uid == 1001  # ::ffff:127.0.0.1, a dual-stack client
    assert str(lo6.local[0]) == "::1" and lo6.local[1] == 8080
    (big,) = parse_proc_net_tcp("header\n 0: 7F000001:1F90 7F000001:4E20 01 0:0 0:0 0 42 0 1\n", "big")
    assert str(big.local[0]) == "127.0.0.1" and big.local[1] == 8080 and big.uid == 42
    assert parse_proc_net_tcp("header\n 0: garbage\n 1: ZZ:1 00:0 01 0 0 0 0 0\n") == []


def test_socket_owner(tmp_path: Path) -> None:
    (tmp_path / "tcp").write_text(TCP)
    (tmp_path / "tcp6").write_text(TCP6)
    tables = [str(tmp_path / "tcp"), str(tmp_path / "tcp6")]
    assert socket_owner(("127.0.0.1", 0x99E4), ("127.0.0.1", 20000), tables) == 1000
    assert socket_owner(("::ffff:127.0.0.1", 0xD431), ("127.0.0.1", 20000), tables) == 1001
    assert socket_owner(("127.0.0.1", 0x99F2), ("127.0.0.1", 20000), tables) is None  # TIME_WAIT: nobody's
    assert socket_owner(("127.0.0.1", 0x99E4), ("127.0.0.1", 20001), tables) is None
    with pytest.raises(OSError):
        socket_owner(("127.0.0.1", 1), ("127.0.0.1", 2), [str(tmp_path / "none")])


def test_default_port_is_stable() -> None:
    a = default_port("https://gw.example.com", "app")
    assert a == default_port("https://gw.example.com/", "app") and PORT_BASE <= a < PORT_BASE + PORT_SPAN
    assert a != default_port("https://gw.example.com", "analytics")


# --- against real servers ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NanoIdP]:
    users = [IdPUser("alice", "alice-pw", "alice@example.com", ["eng", "dba"])]
    with running_idp(tmp_path_factory.mktemp("idp"), users, access_token_ttl=TTL) as provider:
        yield provider


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, idp: NanoIdP, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    oidc = {"issuer": idp.issuer, "audience": [idp.audience, idp.client_id], "client_id": idp.client_id,
            "ca_file": str(idp.ca_file), "username_claim": "sub", "allowed_groups": ["eng", "dba"],
            "leeway": "1s"}  # an expired token is refused at once: a connection after expiry needs the refresh
    extra = {"identity": {"oidc": [oidc]}, "listen": {"api": f"127.0.0.1:{free_port()}"}}
    with run_gateway(tmp_path_factory.mktemp("gw"), upstream, extra=extra) as g:
        yield g


def _api(gw: Gateway) -> str:
    import yaml

    return f"https://{yaml.safe_load(gw.config_path.read_text())['listen']['api']}"


def _write_login(home: Path, gw: Gateway, idp: NanoIdP) -> Profile:
    """What `wardgate login` would store for alice (tokens from the password grant: no browser needed)."""
    prof = Profile(gateway=_api(gw), postgres=f"127.0.0.1:{gw.port}", issuer=idp.issuer, client_id=idp.client_id,
                   token_endpoint=str(idp.metadata["token_endpoint"]), credential="access_token",
                   revocation_endpoint=idp.metadata.get("revocation_endpoint"),
                   ca_file=str(gw.config_path.parent / "data" / "gateway.crt"), idp_ca_file=str(idp.ca_file),
                   scopes=SCOPE.split(), user="alice")
    apply_tokens(prof, idp.password_tokens("alice", "alice-pw", scope=SCOPE))
    assert prof.refresh_token
    with mock.patch.dict(os.environ, {"WARDGATE_HOME": str(home)}):
        profiles.save(prof)
    return prof


def _stored(home: Path) -> dict[str, Any]:
    data = json.loads((home / "credentials.json").read_text())
    return data["profiles"][data["default"]]  # type: ignore[no-any-return]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return {**env, "WARDGATE_HOME": str(home), "PGCONNECT_TIMEOUT": "10"}


class Connect:
    """A `wardgate connect` process; its output goes to files (read while it runs)."""

    def __init__(self, home: Path, *args: str) -> None:
        self.out = home / f"connect-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([*CONNECT, "connect", *args], stdout=out, stderr=err, env=_env(home))
        self.port = 0

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def ready(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(r"listening on 127\.0\.0\.1:(\d+) ", self.stdout()):
                self.port = int(found.group(1))
                return self.port
            if self.proc.poll() is not None:
                raise AssertionError(f"wardgate connect exited with {self.proc.returncode}:\n{self.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"wardgate connect did not start within {timeout}s:\n{self.stderr()}")

    def finish(self, timeout: float = 20) -> int:
        """The exit status of a process that ends on its own."""
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C would: a clean exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(15)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def dsn(self, dbname: str = "app", user: str = "whatever") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} sslmode=disable connect_timeout=10"


@contextlib.contextmanager
def running(home: Path, *args: str) -> Iterator[Connect]:
    c = Connect(home, *args)
    try:
        c.ready()
        yield c
    finally:
        c.kill()
        assert "Traceback" not in c.stderr(), c.stderr()


def _psql(dsn: str, sql: str, home: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, "psql", "-X", "-w", "-At", dsn, "-c", sql], capture_output=True, text=True,
                          env=_env(home), timeout=30, cwd="/")


_JDBC_JARS = [Path("/usr/share/java/postgresql.jar"),
              *sorted(Path.home().glob(".m2/repository/org/postgresql/postgresql/*/postgresql-*.jar"))]
JDBC_JAR = next((j for j in _JDBC_JARS if j.exists()), None)
JDBC_CLIENT = """
import java.sql.*;
public final class Jdbc {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0]);
             ResultSet rs = c.createStatement().executeQuery("select 'jdbc ' || current_setting('application_name')")) {
            rs.next();
            System.out.println(rs.getString(1));
        }
    }
}
"""


def _jdbc(url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """The printed JDBC URL as it is, in the PostgreSQL JDBC driver (what DBeaver and DataGrip use)."""
    assert JDBC_JAR is not None
    source = tmp / "Jdbc.java"
    source.write_text(JDBC_CLIENT)
    return subprocess.run(["java", "-cp", str(JDBC_JAR), str(source), url], capture_output=True, text=True,
                          timeout=60, env=_env(tmp))


def _oidc_sessions(gw: Gateway, n: int) -> list[dict[str, Any]]:
    store = gw.store()
    def oidc() -> list[dict[str, Any]]:
        rows = [s for s in store.sessions(user="alice") if s["auth_method"] == "oidc"]
        return rows if len(rows) >= n else []

    rows: list[dict[str, Any]] = flush_wait(oidc)
    assert len(rows) >= n, store.sessions(user="alice")
    return rows


def test_connect_psql_psycopg_refresh_cancel_stable_port(gw: Gateway, idp: NanoIdP, tmp_path: Path) -> None:
    login = _write_login(tmp_path, gw, idp)
    first_token, first_expiry = login.access_token, login.expires_at
    stable = default_port(login.gateway, "app")
    with running(tmp_path, "app") as a:
        assert a.port == stable
        out = a.stdout()
        assert f"listening on 127.0.0.1:{stable} for app on {login.gateway} as alice" in out
        assert f'psql "host=127.0.0.1 port={stable} dbname=app user=alice sslmode=disable"' in out
        assert f"jdbc:postgresql://127.0.0.1:{stable}/app?user=alice&sslmode=disable" in out

        # real psql, no password, any user name: the gateway sees alice, authenticated by her OIDC token
        res = _psql(a.dsn(), "select 1, current_setting('application_name')", tmp_path)
        assert res.returncode == 0 and res.stdout.strip() == "1|psql", res.stderr
        s = _oidc_sessions(gw, 1)[0]  # the newest
        assert s["user"] == "alice" and s["connection"] == "app" and s["issuer"] == idp.issuer
        assert s["application_name"] == "psql"

        if JDBC_JAR is not None and shutil.which("java"):  # Java's sockets are dual-stack: the tcp6 peer check
            url = re.search(r"JDBC \(DBeaver, DataGrip\): (\S+)", out)
            assert url is not None
            res = _jdbc(url.group(1), tmp_path)
            assert res.returncode == 0 and res.stdout.strip() == "jdbc PostgreSQL JDBC Driver", res.stderr

        # another database than the connection: a clear refusal, not a silent substitution
        with pytest.raises(psycopg.OperationalError, match='serves connection "app" only'):
            psycopg.connect(a.dsn(dbname="postgres"))

        # a second listener for the same login (another port), refreshing side by side with the first
        with running(tmp_path, "app", "--port", str(free_port())) as b, \
                psycopg.connect(a.dsn(), autocommit=True) as early:
            assert b.port != stable
            assert early.execute("select 2").fetchone() == (2,)
            # bulk both ways, through the relay's bounded reads: 4 MB up in a parameter, 8 MB down
            assert early.execute("select length(%s)", ["y" * 4_000_000]).fetchone() == (4_000_000,)
            rows = early.execute("select repeat('x', 100000) from generate_series(1, 80)").fetchall()
            assert len(rows) == 80 and all(r[0] == "x" * 100_000 for r in rows)

            # cancel: a real CancelRequest to the listener, forwarded to the gateway over TLS
            with psycopg.connect(b.dsn(), autocommit=True) as slow:
                timer = threading.Timer(1.0, slow.cancel)
                started = time.monotonic()
                timer.start()
                with pytest.raises(psycopg.errors.QueryCanceled) as caught:
                    slow.execute("select pg_sleep(30)")
                timer.join()
                assert caught.value.sqlstate == "57014" and time.monotonic() - started < 10

            if os.getuid() == 0:  # another local user is refused (needs root to be someone else)
                res = _psql(a.dsn(), "select 1", tmp_path, "setpriv", "--reuid=65534", "--regid=65534",
                            "--clear-groups")
                assert res.returncode != 0 and "this listener belongs to user root" in res.stderr, res.stderr

            # past the first access token's expiry (and the gateway's leeway of 1 s)
            time.sleep(max(0.0, first_expiry + 1.5 - time.time()))
            for c in (a, b):
                with psycopg.connect(c.dsn()) as conn:
                    assert conn.execute("select 3").fetchone() == (3,)
            stored = _stored(tmp_path)
            assert stored["access_token"] != first_token and stored["expires_at"] > time.time()
            # the session opened before the expiry goes on: the gateway checks a token when a session opens
            assert early.execute("select 4").fetchone() == (4,)
            assert b.stop() == 0
        # psql, (jdbc,) early, slow, and one through each listener after the expiry
        tokens = {s["token_id"] for s in _oidc_sessions(gw, 5)}
        assert len(tokens) >= 2, tokens  # sessions opened with the first token and with refreshed ones
        assert a.stop() == 0
        assert "Traceback" not in a.stderr() and "cannot refresh" not in a.stderr(), a.stderr()

    # the same port on the next start; --port overrides it
    with running(tmp_path, "app") as again, psycopg.connect(again.dsn(), autocommit=True) as open_session:
        assert again.port == stable
        open_session.execute("select 1")
        assert again.stop() == 0  # a clean exit, with a session open (which it ends)
        with pytest.raises(psycopg.OperationalError):
            open_session.execute("select 1")


def test_connect_failures(gw: Gateway, idp: NanoIdP, tmp_path: Path) -> None:
    # no login stored
    nobody = tmp_path / "empty"
    nobody.mkdir()
    c = Connect(nobody, "app")
    assert c.finish() == 1
    assert "wardgate login" in c.stderr() and c.stdout() == ""

    home = tmp_path / "home"
    _write_login(home, gw, idp)
    # the port is taken
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        c = Connect(home, "app", "--port", str(taken.getsockname()[1]))
        assert c.finish() == 1
        assert "is in use" in c.stderr() and "--port" in c.stderr()

    with running(home, "app", "--port", str(free_port())) as a, \
            running(home, "nosuch", "--port", str(free_port())) as other:
        # the gateway's own refusal reaches the client as it is
        with pytest.raises(psycopg.OperationalError, match='connection "nosuch" does not exist on this gateway'):
            psycopg.connect(other.dsn(dbname="nosuch"))

        # the login is revoked at the provider (a spent refresh token presented again revokes its family)
        spent = _stored(home)["refresh_token"]
        for _ in range(2):
            with contextlib.suppress(IdPError):
                idp.refresh(spent)
        time.sleep(max(0.0, _stored(home)["expires_at"] + 0.2 - time.time()))

        async def attempt() -> tuple[str, str]:
            try:
                conn = await asyncpg.connect(host="127.0.0.1", port=a.port, user="x", database="app", ssl=False,
                                             timeout=10)
            except asyncpg.PostgresError as exc:
                return str(exc.sqlstate), str(exc)
            await conn.close()
            raise AssertionError("the connection opened with a revoked login")

        state, message = asyncio.run(attempt())
        assert state == "28000" and "run wardgate login again" in message, (state, message)
        with pytest.raises(psycopg.OperationalError, match=r"FATAL: .*run wardgate login again"):
            psycopg.connect(a.dsn())
        assert a.stop() == 0
        assert "cannot refresh the login" in a.stderr()


def test_gateway_unreachable_or_untrusted(gw: Gateway, idp: NanoIdP, tmp_path: Path) -> None:
    """The listener in-process: a gateway that is not there, and one whose certificate the login does not trust,
    each end in a FATAL 08001 that says so."""
    good = _write_login(tmp_path, gw, idp)
    with mock.patch.dict(os.environ, {"WARDGATE_HOME": str(tmp_path)}):
        untrusted = dataclasses.replace(good, gateway="https://untrusted.example", ca_file=str(idp.ca_file))
        gone = dataclasses.replace(good, gateway="https://gone.example", postgres=f"127.0.0.1:{free_port()}")
        for p in (untrusted, gone):
            profiles.save(p)

        async def attempt(prof: Profile) -> tuple[str, str]:
            listener = Listener(prof, "app", free_port())
            await listener.start()
            try:
                await asyncpg.connect(host="127.0.0.1", port=listener.port, user="x", database="app", ssl=False,
                                      timeout=10)
            except asyncpg.PostgresError as exc:
                return str(exc.sqlstate), str(exc)
            finally:
                await listener.close()
            raise AssertionError("connected")

        state, message = asyncio.run(attempt(untrusted))
        assert state == "08001" and "cannot verify the gateway's certificate at 127.0.0.1:" in message, message
        state, message = asyncio.run(attempt(gone))
        assert state == "08001" and "cannot reach the gateway at 127.0.0.1:" in message \
            and "Connection refused" in message, message
