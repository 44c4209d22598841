"""Scale and resource bounds of one gateway process: memory under large and stalled results, hundreds of
concurrent sessions, and clients that trickle, stall or lie about message sizes.

Memory is the gateway's resident set (``/proc/PID/status``: VmRSS sampled while the test runs, VmHWM after
resetting it through ``/proc/PID/clear_refs``), compared with a baseline taken once the gateway is warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg import sql

from tests.conftest import Gateway, UpstreamDB, flush_wait, run_gateway, unverified_tls
from tests.integration.test_bad_input import Raw
from tests.pgcluster import PgCluster, PgClusterError, pg_cluster
from wardgate.protocols.postgres import decode, encode

ROWS = 1_000_000
BIG_QUERY = f"SELECT g, repeat('x', 200) FROM generate_series(1, {ROWS}) g"
RSS_BUDGET_KB = 50 * 1024  # the most the gateway may grow while relaying any one result
AUTH_TIMEOUT = 3.0


# --- measuring the gateway process ------------------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmRSS")


def hwm_kb(pid: int) -> int:
    return _status_kb(pid, "VmHWM")


def reset_hwm(pid: int) -> None:
    """Make VmHWM (peak RSS) restart from the current RSS (Linux >= 4.0)."""
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")
    assert hwm_kb(pid) <= rss_kb(pid) + 1024, "VmHWM did not reset"


def gw_pid(gw: Gateway) -> int:
    assert gw.proc is not None and gw.proc.poll() is None, "the gateway is not running"
    return gw.proc.pid


class RssSampler:
    """Samples a process's VmRSS every ``period`` seconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int, period: float = 0.02) -> None:
        self.pid = pid
        self.period = period
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_kb(self.pid))
            self._stop.wait(self.period)

    @property
    def peak(self) -> int:
        return max(self.samples)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_kb(self.pid))


def tls_context() -> ssl.SSLContext:
    ctx = unverified_tls()
    return ctx


# --- a raw client that counts a result without keeping it -----------------------------------------------------


def raw_session(gw: Gateway, user: str, *, tls: bool, app: str = "") -> Raw:
    raw = Raw(gw.port)
    raw.sock.settimeout(30)
    if tls:
        raw.send(encode.ssl_request())
        assert raw.sock.recv(1) == b"S"
        raw.sock = tls_context().wrap_socket(raw.sock)
    raw.login(user, gw.token(user), **({"application_name": app} if app else {}))
    return raw


@dataclass
class Result:
    rows: int = 0
    tag: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)
    nbytes: int = 0
    seconds: float = 0.0


def read_result(raw: Raw, *, rate: float | None = None, on_chunk: Callable[[], None] | None = None) -> Result:
    """Read up to ReadyForQuery, counting DataRows; at most ``rate`` bytes/s when given (a slow reader)."""
    res = Result()
    buf = bytearray(raw.buf)
    raw.buf = b""
    pos = 0
    start = time.monotonic()
    unpack = struct.Struct("!I").unpack_from
    while True:
        while len(buf) - pos >= 5:
            (length,) = unpack(buf, pos + 1)
            if len(buf) - pos < 1 + length:
                break
            kind = buf[pos]
            if kind == 0x44:  # D
                res.rows += 1
            elif kind == 0x43:  # C
                res.tag = decode.command_tag(bytes(buf[pos : pos + 1 + length]))
            elif kind == 0x45:  # E
                res.errors.append(decode.error_fields(bytes(buf[pos : pos + 1 + length])).fields)
            elif kind == 0x5A:  # Z
                raw.buf = bytes(buf[pos + 1 + length :])
                res.seconds = time.monotonic() - start
                return res
            pos += 1 + length
        del buf[:pos]
        pos = 0
        chunk = raw.sock.recv(65536)
        assert chunk, f"the gateway closed the connection mid-result after {res.rows} rows"
        buf += chunk
        res.nbytes += len(chunk)
        if on_chunk is not None:
            on_chunk()
        if rate is not None:
            ahead = res.nbytes / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Plaintext allowed (raw clients), TLS offered, a short auth timeout, the default max_message_bytes."""
    extra = {"listen": {"allow_plaintext": True}, "limits": {"auth_timeout": f"{AUTH_TIMEOUT:g}s"}}
    with run_gateway(tmp_path_factory.mktemp("scale"), upstream, extra=extra) as g:
        warm = psycopg.connect(g.dsn("warmup", g.token("warmup")))
        assert warm.execute("select count(*) from customers").fetchone() == (50,)
        warm.close()
        yield g


@pytest.fixture
def bystander(gw: Gateway) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A well-behaved TLS session open across a test; it must keep working."""
    conn = psycopg.connect(gw.dsn("bystander", gw.token("bystander")), autocommit=True)
    assert conn.execute("select 1").fetchone() == (1,)
    yield conn
    assert conn.execute("select count(*) from customers").fetchone() == (50,)
    conn.close()


def _assert_full_result(res: Result) -> None:
    assert not res.errors, f"the query failed: {res.errors}"
    assert res.rows == ROWS and res.tag == f"SELECT {ROWS}", (res.rows, res.tag)


# --- 1. bounded memory --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_slow_reader_of_a_million_rows_keeps_rss_bounded(gw: Gateway, upstream: UpstreamDB, tls: bool) -> None:
    pid = gw_pid(gw)
    app = f"wg-slow-{'tls' if tls else 'plain'}"
    raw = raw_session(gw, app, tls=tls, app=app)
    time.sleep(0.2)
    base = rss_kb(pid)
    reset_hwm(pid)
    waits: list[tuple[str | None, str | None, str | None]] = []
    done = threading.Event()

    def watch_backend() -> None:
        while not done.wait(0.5):
            waits.append(_backend_wait(upstream, app))

    watcher = threading.Thread(target=watch_backend)
    raw.send(encode.query(BIG_QUERY))
    watcher.start()
    try:
        with RssSampler(pid) as sampler:
            res = read_result(raw, rate=50e6)  # ~220 MB at 50 MB/s: over 4 s, so the server is far ahead
    finally:
        done.set()
        watcher.join()
    _assert_full_result(res)
    growth = max(sampler.peak, hwm_kb(pid)) - base
    print(f"\n[{'tls' if tls else 'plain'}] {ROWS} rows, {res.nbytes / 1e6:.0f} MB in {res.seconds:.1f} s to a slow "
          f"reader: gateway RSS {base} kB before, peak +{growth} kB (sampled peak {sampler.peak} kB, "
          f"VmHWM {hwm_kb(pid)} kB, {len(sampler.samples)} samples)")
    assert res.seconds > 3.5, "the reader was not slow: the test did not exercise back-pressure"
    # The server was ahead of the reader: its backend was seen blocked writing to the (paused) gateway.
    assert ("active", "Client", "ClientWrite") in waits, f"upstream backend states while streaming: {waits}"
    assert growth < RSS_BUDGET_KB, f"gateway RSS grew by {growth} kB while relaying to a slow reader"
    raw.send(encode.query("select 1"))
    assert read_result(raw).rows == 1
    raw.close()


def _backend_wait(upstream: UpstreamDB, app: str) -> tuple[str | None, str | None, str | None]:
    with upstream.connect(autocommit=True) as conn:
        row = conn.execute("select state, wait_event_type, wait_event from pg_stat_activity "
                           "where application_name = %s", (app,)).fetchone()
    return (row[0], row[1], row[2]) if row else (None, None, None)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_stalled_reader_pauses_the_upstream(gw: Gateway, upstream: UpstreamDB, tls: bool,
                                            bystander: psycopg.Connection[tuple[object, ...]]) -> None:
    pid = gw_pid(gw)
    app = f"wg-stall-{'tls' if tls else 'plain'}"
    raw = raw_session(gw, app, tls=tls, app=app)
    time.sleep(0.2)
    base = rss_kb(pid)
    reset_hwm(pid)
    raw.send(encode.query(BIG_QUERY))
    waits: list[tuple[str | None, str | None, str | None]] = []
    with RssSampler(pid) as sampler:
        deadline = time.monotonic() + 5.0  # the client reads nothing for 5 s
        while time.monotonic() < deadline:
            time.sleep(0.5)
            waits.append(_backend_wait(upstream, app))
        # ...while the gateway goes on serving everybody else
        assert bystander.execute("select count(*) from customers").fetchone() == (50,)
    stalled_growth = max(sampler.peak, hwm_kb(pid)) - base
    print(f"\n[{'tls' if tls else 'plain'}] client stalled 5 s: gateway RSS {base} kB before, "
          f"peak +{stalled_growth} kB; upstream backend: {waits[-1]}")
    assert stalled_growth < RSS_BUDGET_KB, f"gateway RSS grew by {stalled_growth} kB while the client read nothing"
    # The backend is blocked writing to the gateway: the gateway stopped reading it.
    assert waits[-1] == ("active", "Client", "ClientWrite"), f"upstream backend states while stalled: {waits}"
    res = read_result(raw)
    _assert_full_result(res)
    raw.close()


# --- 3b. slow loris ------------------------------------------------------------------------------------------------


@dataclass
class Loris:
    kind: str
    sock: socket.socket
    payload: bytes
    opened: float
    sent: int = 0
    received: bytes = b""
    closed_after: float | None = None
    reset: bool = False


def _client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_context().wrap_bio(incoming, outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16", "not a TLS handshake record"
    return hello


def _open_loris(gw: Gateway, kind: str) -> Loris:
    raw = Raw(gw.port)
    opened = time.monotonic()
    if kind == "startup":  # the startup packet itself, one byte a second
        return Loris(kind, raw.sock, encode.startup_message({"user": "loris", "database": "app"}), opened)
    if kind == "tls-hello":  # TLS accepted, then the ClientHello one byte a second
        raw.send(encode.ssl_request())
        assert raw.sock.recv(1) == b"S"
        return Loris(kind, raw.sock, _client_hello(), opened)
    # a whole startup packet, then the password message one byte a second
    raw.send(encode.startup_message({"user": "loris", "database": "app"}))
    msg = raw.message()
    assert msg is not None and msg[0] == "R"
    return Loris(kind, raw.sock, encode.password_message(b"x" * 64), opened)


def _trickle(lorises: list[Loris], until: float) -> None:
    """Send each loris's next byte every second (half a second off the timeout's beat) until each is closed."""
    tick = min(lo.opened for lo in lorises) + 0.5
    while time.monotonic() < until and any(lo.closed_after is None for lo in lorises):
        for lo in lorises:
            if lo.closed_after is None and lo.sent < len(lo.payload):
                with contextlib.suppress(OSError):
                    lo.sock.send(lo.payload[lo.sent : lo.sent + 1])
                lo.sent += 1
        tick += 1.0
        while (now := time.monotonic()) < min(tick, until):
            live = [lo for lo in lorises if lo.closed_after is None]
            if not live:
                return
            readable, _, _ = select.select([lo.sock for lo in live], [], [], min(tick, until) - now)
            for lo in live:
                if lo.sock not in readable:
                    continue
                try:
                    chunk = lo.sock.recv(65536)
                except ConnectionResetError:
                    chunk, lo.reset = b"", True
                if chunk:
                    lo.received += chunk
                else:
                    lo.closed_after = time.monotonic() - lo.opened


def test_slow_loris_is_cut_at_auth_timeout_while_others_connect(gw: Gateway) -> None:
    kinds = ["startup", "tls-hello", "password"]
    lorises = [_open_loris(gw, kind) for kind in kinds for _ in range(10)]
    trickler = threading.Thread(target=_trickle, args=(lorises, time.monotonic() + AUTH_TIMEOUT + 6))
    trickler.start()
    try:
        time.sleep(1.0)  # the lorises are all mid-startup now
        for i in range(3):  # normal clients log in and work meanwhile, promptly
            t0 = time.monotonic()
            with psycopg.connect(gw.dsn("normal", gw.token("normal")), connect_timeout=5) as conn:
                assert conn.execute("select %s::int + 1", (i,)).fetchone() == (i + 1,)
            took = time.monotonic() - t0
            assert took < 2.0, f"a normal login took {took:.1f} s while lorises were connected"
    finally:
        trickler.join()
        for lo in lorises:
            lo.sock.close()
    report = {kind: sorted(round(lo.closed_after, 1) if lo.closed_after is not None else -1.0
                           for lo in lorises if lo.kind == kind) for kind in kinds}
    tls_got = {lo.received[:40] for lo in lorises if lo.kind == "tls-hello"}
    print(f"\nloris connections closed after (s), auth_timeout {AUTH_TIMEOUT:g}s: {report}; "
          f"TLS lorises received {tls_got}")
    for lo in lorises:
        assert lo.closed_after is not None, f"a {lo.kind} loris was still connected after {AUTH_TIMEOUT + 6:g}s"
        assert AUTH_TIMEOUT - 0.5 < lo.closed_after < AUTH_TIMEOUT + 2.0, (lo.kind, lo.closed_after)
        assert lo.sent < len(lo.payload), f"a {lo.kind} loris finished its message before the timeout"
        if lo.kind != "tls-hello":  # in clear text the client is told why
            assert lo.received[:1] == b"E", (lo.kind, lo.received[:80])
            fields = decode.error_fields(lo.received).fields
            assert fields["C"] == "08P01" and fields["S"] == "FATAL" and "timed out" in fields["M"], fields


# --- 3c. lying length prefixes ---------------------------------------------------------------------------------------


def test_one_gigabyte_length_prefix_is_refused_at_once(gw: Gateway,
                                                       bystander: psycopg.Connection[tuple[object, ...]]) -> None:
    pid = gw_pid(gw)
    raw = raw_session(gw, "gigabyte", tls=False)
    time.sleep(0.2)
    base = rss_kb(pid)
    reset_hwm(pid)
    t0 = time.monotonic()
    raw.send(b"Q" + struct.pack("!I", 1 << 30) + b"select " + b"x" * 65536)
    err = raw.error()
    took = time.monotonic() - t0
    assert err["C"] == "08P01" and err["S"] == "FATAL", err
    assert raw.closed()
    growth = hwm_kb(pid) - base
    print(f"\n1 GB length prefix refused in {took * 1000:.1f} ms; gateway peak RSS +{growth} kB")
    assert took < 1.0
    assert growth < 5 * 1024, f"gateway RSS grew by {growth} kB on a 1 GB length prefix"
    assert bystander.execute("select 2").fetchone() == (2,)
    store = gw.store()
    ended = flush_wait(lambda: [s for s in store.sessions(user="gigabyte") if s["ended_at"]])
    assert ended and ended[0]["end_reason"].startswith("protocol violation"), ended


def test_large_announced_message_is_not_allocated_up_front(gw: Gateway,
                                                           bystander: psycopg.Connection[tuple[object, ...]]) -> None:
    """60 MB announced (under the 64 MB default limit) but not sent: the gateway waits without reserving it."""
    pid = gw_pid(gw)
    raw = raw_session(gw, "announcer", tls=False)
    time.sleep(0.2)
    base = rss_kb(pid)
    reset_hwm(pid)
    raw.send(b"Q" + struct.pack("!I", 60 << 20) + b"select ")
    time.sleep(1.0)
    assert bystander.execute("select 3").fetchone() == (3,)
    growth = hwm_kb(pid) - base
    print(f"\n60 MB announced, 7 bytes sent: gateway peak RSS +{growth} kB")
    assert growth < 5 * 1024
    raw.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        raw.sock.recv(1)  # nothing to say yet: the message is still arriving
    raw.close()


# --- 2. five hundred concurrent sessions -----------------------------------------------------------------------------

CLIENTS = 500
SCALE_DB = "wg_scale"


@pytest.fixture(scope="module")
def big_pg() -> Iterator[PgCluster]:
    try:
        with pg_cluster(hba=["local all postgres trust", "host all all 127.0.0.1/32 trust"],
                        settings={"max_connections": "600", "shared_buffers": "'32MB'"}) as cluster:
            with cluster.connect(autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(SCALE_DB)))
                admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(SCALE_DB),
                                                                            sql.Identifier(SCALE_DB)))
            with psycopg.connect(f"host=127.0.0.1 port={cluster.port} dbname={SCALE_DB} user={SCALE_DB}",
                                 autocommit=True) as conn:
                conn.execute("CREATE TABLE items AS SELECT i AS id, 'item ' || i AS name "
                             "FROM generate_series(1, 100) i")
            yield cluster
    except PgClusterError as exc:
        pytest.fail(f"cannot start the private PostgreSQL cluster (max_connections=600) this test needs: {exc}",
                    pytrace=False)


def _raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= wanted, f"cannot raise the open-files limit to {wanted} (it is {soft})"


def _nofile_of(pid: int) -> int:
    with open(f"/proc/{pid}/limits", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open-files limit")


def _cluster_sessions(cluster: PgCluster) -> int:
    with cluster.connect(autocommit=True) as admin:
        row = admin.execute("select count(*) from pg_stat_activity where datname = %s and backend_type = "
                            "'client backend'", (SCALE_DB,)).fetchone()
    return int(row[0]) if row else -1


async def _many_sessions(gw: Gateway, user: str, token: str, n: int, at_peak: Callable[[], Any]) -> list[Any]:
    """``n`` concurrent asyncpg sessions, three queries each; ``at_peak()`` runs while all ``n`` are open."""
    ctx = tls_context()
    opened = 0
    all_open = asyncio.Event()
    release = asyncio.Event()

    async def one(i: int) -> tuple[int, int, tuple[str, str], int]:
        nonlocal opened
        conn = await asyncpg.connect(host="127.0.0.1", port=gw.port, user=user, password=token, database="app",
                                     ssl=ctx, timeout=60, command_timeout=60)
        try:
            doubled = await conn.fetchval("SELECT $1::int * 2", i)
            count = await conn.fetchval("SELECT count(*) FROM items")
            who = await conn.fetchrow("SELECT current_user, current_database()")
            opened += 1
            if opened == n:
                all_open.set()
            await release.wait()
            after = await conn.fetchval("SELECT 1")  # still usable after idling with 499 others
            return doubled, count, (who[0], who[1]), after
        finally:
            await conn.close()

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    waiter = asyncio.create_task(all_open.wait())
    try:
        pending: set[asyncio.Future[Any]] = {waiter, *tasks}
        deadline = time.monotonic() + 90
        while not all_open.is_set() and time.monotonic() < deadline:  # until all are open, or one fails
            done, pending = await asyncio.wait(pending, timeout=deadline - time.monotonic(),
                                               return_when=asyncio.FIRST_COMPLETED)
            failures = [t.exception() for t in done if t is not waiter and t.exception() is not None]
            assert not failures, f"a session failed before all were open: {failures[0]!r}"
        assert all_open.is_set(), f"only {opened} of {n} sessions opened within 90 s"
        await asyncio.get_running_loop().run_in_executor(None, at_peak)
    finally:
        release.set()
        waiter.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    return results


def test_five_hundred_concurrent_sessions(big_pg: PgCluster, tmp_path: Path) -> None:
    _raise_nofile(4 * CLIENTS + 200)
    connection = {"upstream": big_pg.url(SCALE_DB, SCALE_DB), "connect_timeout": "30s"}
    with run_gateway(tmp_path / "gw500", UpstreamDB(SCALE_DB, "unused"), connection=connection,
                     extra={"limits": {"auth_timeout": "60s"}}) as gw:
        pid = gw_pid(gw)
        assert _nofile_of(pid) >= 4 * CLIENTS + 200, "the gateway did not inherit the raised open-files limit"
        token = gw.token("scale")
        warm_token = gw.token("warm")

        # Warm up: imports, the TLS context, the auth thread pool, allocator arenas.
        asyncio.run(_many_sessions(gw, "warm", warm_token, 20, lambda: None))
        time.sleep(1.0)
        base = rss_kb(pid)
        measured: dict[str, Any] = {}

        def at_peak() -> None:
            time.sleep(1.0)  # let the audit writer and the allocator settle
            measured["rss"] = rss_kb(pid)
            measured["upstream"] = _cluster_sessions(big_pg)
            measured["fds"] = len(list(Path(f"/proc/{pid}/fd").iterdir()))
            store = gw.store()
            try:
                flush_wait(lambda: len(store.sessions(limit=10 * CLIENTS, user="scale")) >= CLIENTS, timeout=15)
                measured["sessions"] = len(store.sessions(limit=10 * CLIENTS, user="scale"))
            finally:
                store.close()

        t0 = time.monotonic()
        results = asyncio.run(_many_sessions(gw, "scale", token, CLIENTS, at_peak))
        took = time.monotonic() - t0
        failures = [r for r in results if isinstance(r, BaseException)]
        per_conn = (measured["rss"] - base) / CLIENTS
        print(f"\n{CLIENTS} concurrent TLS sessions (+{CLIENTS} upstream connections) in {took:.1f} s; gateway RSS "
              f"{base} kB before, {measured['rss']} kB with all open: {per_conn:.1f} kB per idle session; "
              f"{measured['fds']} fds; {measured['upstream']} upstream backends; {measured['sessions']} sessions "
              "in the store")
        assert not failures, f"{len(failures)} of {CLIENTS} sessions failed, first: {failures[0]!r}"
        expected = [(2 * i, 100, (SCALE_DB, SCALE_DB), 1) for i in range(CLIENTS)]
        assert results == expected
        assert measured["upstream"] == CLIENTS, "each session holds exactly one upstream connection"
        assert measured["sessions"] == CLIENTS
        store = gw.store()
        try:
            ended = flush_wait(lambda: sum(1 for s in store.sessions(limit=10 * CLIENTS, user="scale")
                                           if s["ended_at"]) == CLIENTS, timeout=15)
        finally:
            store.close()
        assert ended, "not every session was recorded as ended"
        assert flush_wait(lambda: _cluster_sessions(big_pg) == 0, timeout=15), "upstream connections leaked"
        assert per_conn < 100, f"{per_conn:.1f} kB of gateway RSS per idle session (budget 100 kB)"


# --- found while testing: buffering before the relay, and large messages ------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_large_message_under_the_limit_is_relayed_in_linear_time(
        gw: Gateway, bystander: psycopg.Connection[tuple[object, ...]]) -> None:
    """A 48 MB message (the default limit is 64 MB) must cost the gateway about one copy, not one per chunk.

    CopyData outside COPY is relayed opaquely and ignored by the server, so this measures framing alone.
    """
    pid = gw_pid(gw)
    size = 48 << 20
    raw = raw_session(gw, "bigmessage", tls=False)
    latencies: list[float] = []
    stop = threading.Event()

    def ping() -> None:
        while not stop.wait(0.05):
            t = time.monotonic()
            bystander.execute("select 1")
            latencies.append(time.monotonic() - t)

    pinger = threading.Thread(target=ping)
    time.sleep(0.2)
    base = rss_kb(pid)
    reset_hwm(pid)
    cpu0 = cpu_seconds(pid)
    t0 = time.monotonic()
    pinger.start()
    try:
        raw.send(b"d" + struct.pack("!I", size + 4))
        block = b"x" * (1 << 20)
        for _ in range(size >> 20):
            raw.send(block)
        raw.send(encode.query("select 1"))
        res = read_result(raw)
    finally:
        stop.set()
        pinger.join()
    took, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    growth = hwm_kb(pid) - base
    print(f"\n48 MB CopyData relayed in {took:.1f} s: gateway CPU {cpu:.2f} s, peak RSS +{growth // 1024} MB, "
          f"slowest bystander query {max(latencies):.2f} s")
    assert not res.errors and res.rows == 1
    assert max(latencies) < 1.0, f"other sessions stalled {max(latencies):.1f} s while one 48 MB message arrived"
    assert cpu < 1.5, f"relaying one 48 MB message cost the gateway {cpu:.1f} s of CPU (quadratic buffering?)"
    raw.close()


def test_oversized_password_message_is_refused_before_it_is_buffered(gw: Gateway) -> None:
    """Before authentication nobody may make the gateway wait for (and hold) a message of max_message_bytes.

    PostgreSQL caps authentication messages at 65535 bytes (PG_MAX_AUTH_TOKEN_LENGTH) and drops a client that
    announces more at once; a gateway token is far smaller than that.
    """
    raw = Raw(gw.port)
    raw.send(encode.startup_message({"user": "unauthenticated", "database": "app"}))
    msg = raw.message()
    assert msg is not None and msg[0] == "R"
    t0 = time.monotonic()
    raw.send(b"p" + struct.pack("!I", 32 << 20) + b"x" * 4096)
    raw.sock.settimeout(2.0)
    try:
        answer: bytes | None = raw.sock.recv(65536)
    except TimeoutError:
        answer = None
    except ConnectionResetError:
        answer = b""
    took = time.monotonic() - t0
    assert answer is not None, ("an unauthenticated client announced a 32 MB password message and the gateway is "
                                "still waiting to buffer all of it (up to limits.max_message_bytes) after 2 s")
    assert took < 1.0
    if answer:
        fields = decode.error_fields(answer).fields
        assert fields["C"] == "08P01" and fields["S"] == "FATAL", fields
    raw.close()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server that accepts and then never says a word: an upstream whose login takes forever."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        lsock.settimeout(0.2)
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(lsock.accept()[0])

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    try:
        yield int(lsock.getsockname()[1])
    finally:
        done.set()
        acceptor.join()
        for s in held:
            s.close()
        lsock.close()


def test_client_flood_during_a_slow_upstream_login_is_not_buffered(tmp_path: Path) -> None:
    """Bytes a client sends after its password, while the upstream login is still running, must not pile up."""
    connect_timeout = 4.0
    with silent_server() as port:
        connection = {"upstream": f"postgresql://nobody@127.0.0.1:{port}/nothing",
                      "connect_timeout": f"{connect_timeout:g}s"}
        with run_gateway(tmp_path / "gwslow", UpstreamDB("nothing", "nobody"), connection=connection,
                         extra={"listen": {"allow_plaintext": True}}) as g:
            pid = gw_pid(g)
            raw = Raw(g.port)
            raw.send(encode.startup_message({"user": "flooder", "database": "app"}))
            msg = raw.message()
            assert msg is not None and msg[0] == "R"
            time.sleep(0.3)
            base = rss_kb(pid)
            reset_hwm(pid)
            cpu0 = cpu_seconds(pid)
            t0 = time.monotonic()
            raw.send(encode.password_message(g.token("flooder").encode()))
            time.sleep(0.5)  # the token is accepted and the upstream login has begun
            block = encode.query("select 1") * 16_000  # 256 kB of well-formed messages
            sent = 0
            raw.sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):  # a timeout means the gateway stopped reading: good
                while sent < (64 << 20) and time.monotonic() - t0 < connect_timeout - 0.5:
                    raw.sock.sendall(block)
                    sent += len(block)
            raw.sock.settimeout(30)
            err = raw.error()
            growth = hwm_kb(pid) - base
            cpu = cpu_seconds(pid) - cpu0
            print(f"\nduring a {connect_timeout:g} s upstream login the client got {sent >> 20} MB accepted; gateway "
                  f"peak RSS +{growth // 1024} MB, CPU {cpu:.2f} s; then {err['C']}: {err['M']}")
            assert err["C"] == "08006", err
            assert growth < 16 * 1024, (f"the gateway buffered the client's bytes during the upstream login: peak "
                                        f"RSS +{growth // 1024} MB after accepting {sent >> 20} MB")
            raw.close()
