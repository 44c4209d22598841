"""What the client was told ran is in the audit store, even across a crash; without a store, nothing runs."""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import ADMIN_DSN, PG_HOST, PG_PORT, UpstreamDB, flush_wait, login_error, run_gateway, unique
from wardgate.store import Store


@pytest.fixture
def pg_store() -> Iterator[tuple[str, str]]:
    name = unique("wgt_audit")
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name, f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        out += [int(c) for c in children]
    return out


def test_acknowledged_statements_survive_a_crash(upstream: UpstreamDB, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    marker = unique("m")
    acknowledged = 0
    with run_gateway(tmp_path / "gw", upstream, store_url=store_url) as gw:
        token = gw.token("crash-user")
        assert gw.proc is not None
        shippers = _children(gw.proc.pid)
        assert shippers, "the gateway should run an audit shipper process"
        for pid in shippers:  # the store stops receiving: records exist only in the journal now
            os.kill(pid, signal.SIGSTOP)
        with psycopg.connect(gw.dsn("crash-user", token), autocommit=True) as conn:
            for i in range(200):
                conn.execute(f"select {i} as {marker}")
                acknowledged += 1
        os.kill(gw.proc.pid, signal.SIGKILL)  # the gateway dies without a word
        for pid in shippers:
            os.kill(pid, signal.SIGKILL)
        gw.proc.wait()
    journal_dir = tmp_path / "gw" / "data" / "journal"
    assert list(journal_dir.glob("*.journal")), "the dead gateway's journal must be left for replay"
    # A new gateway on the same data directory ships the dead one's journal before it serves anyone.
    with run_gateway(tmp_path / "gw", upstream, store_url=store_url) as gw2:
        assert "shipped" in gw2.log()
    store = Store(store_url)
    sessions = store.sessions(user="crash-user")
    texts = [s["text"] for s in store.statements(sessions[0]["id"])]
    assert len([t for t in texts if t and marker in t]) == acknowledged == 200
    assert not list(journal_dir.glob("*.journal"))


def test_a_journal_that_cannot_be_written_ends_the_session_unanswered(upstream: UpstreamDB, tmp_path: Path) -> None:
    """With several sessions live, answers wait for one journal write per turn of the event loop
    (PostgresFrontend.defer); when that write fails, the session whose statement it was ends with 58030 and never
    sees the result, and the gateway refuses statements until the journal takes writes again."""
    with run_gateway(tmp_path / "gw", upstream) as gw:
        token = gw.token("journal-user")
        assert gw.proc is not None
        with psycopg.connect(gw.dsn("journal-user", token), autocommit=True) as a, \
                psycopg.connect(gw.dsn("journal-user", token), autocommit=True) as b:
            assert a.execute("select 1").fetchone() == (1,)
            assert b.execute("select 2").fetchone() == (2,)
            journal = next((tmp_path / "gw" / "data" / "journal").glob("*.journal"))
            limits = resource.prlimit(gw.proc.pid, resource.RLIMIT_FSIZE)
            # The gateway process may not grow any file past the journal's size now: once the space it reserved
            # (journal.RESERVE, ~3,500 of these records) is used, the next reservation fails (EFBIG).
            resource.prlimit(gw.proc.pid, resource.RLIMIT_FSIZE, (journal.stat().st_size, limits[1]))
            try:
                with pytest.raises(psycopg.Error) as failed:
                    for i in range(20_000):
                        a.execute(f"select {i} as never_answered_once_the_journal_is_full").fetchall()
                assert failed.value.sqlstate == "58030"
                assert "cannot record this session's statements" in str(failed.value)
                assert a.closed or a.broken
                with pytest.raises(psycopg.Error) as refused:
                    b.execute("select 3").fetchall()
                assert refused.value.sqlstate == "58030"
            finally:
                resource.prlimit(gw.proc.pid, resource.RLIMIT_FSIZE, limits)
        # The journal takes writes again: so does the gateway.
        with psycopg.connect(gw.dsn("journal-user", token), autocommit=True) as c:
            assert flush_wait(lambda: _works(c), timeout=15)


def test_no_store_no_statements(upstream: UpstreamDB, tmp_path: Path, pg_store: tuple[str, str]) -> None:
    name, url = pg_store
    with run_gateway(tmp_path, upstream, store_url=url) as gw:
        token = gw.token("failclosed")
        with psycopg.connect(gw.dsn("failclosed", token), autocommit=True) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
                admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            try:
                deadline = time.monotonic() + 10
                refused = None
                while time.monotonic() < deadline:
                    try:
                        conn.execute("select 2")
                    except psycopg.Error as exc:
                        refused = exc
                        break
                    time.sleep(0.1)
                assert refused is not None and refused.sqlstate == "58030"
                assert "audit store" in str(refused)
                code, msg = login_error(gw, "failclosed", token)
                assert code == "08004" and "store" in msg
            finally:
                with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
                    admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
            # The store is back: the gateway recovers by itself.
            assert flush_wait(lambda: _works(conn), timeout=15)
    assert "refusing new sessions and statements" in gw.log()


def _works(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        return conn.execute("select 3").fetchone() == (3,)
    except psycopg.Error:
        return False


def test_shipper_of_a_gateway_that_died_at_start_stops(tmp_path: Path) -> None:
    """A gateway that exits while its shipper is still starting (a port already taken) must not leave the shipper
    running forever: it is told its gateway's pid instead of reading its parent once it is already init."""
    import subprocess
    import sys

    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    Store(store_url).migrate()
    journal = tmp_path / "j.journal"
    journal.write_bytes(b"")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    shipper = subprocess.Popen([sys.executable, "-m", "wardgate.audit.shipper", "--journal", str(journal),
                                "--parent", str(gone.pid)], env={**os.environ, "WARDGATE_SHIPPER_STORE": store_url})
    try:
        assert shipper.wait(timeout=20) == 0
    finally:
        if shipper.poll() is None:
            shipper.kill()


def test_the_shipped_journal_is_given_back_to_the_filesystem(upstream: UpstreamDB, tmp_path: Path) -> None:
    """The journal grows as long as its gateway runs; what the store holds is punched out of it (a hole: offsets
    unchanged), so its disk use stays near the unshipped part (shipper.release_shipped)."""
    from wardgate.audit.shipper import RELEASE_STEP

    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    marker = unique("r")
    columns = ", ".join(f"{n} as column_{n}" for n in range(800))  # ~12 KB of statement text a record
    with run_gateway(tmp_path / "gw", upstream, store_url=store_url) as gw:
        token = gw.token("release-user")
        with psycopg.connect(gw.dsn("release-user", token), autocommit=True) as conn:
            for i in range(400):
                conn.execute(f"select {i} as {marker}, {columns}")
        journal = next((tmp_path / "gw" / "data" / "journal").glob("*.journal"))
        size = journal.stat().st_size
        assert size > 3 * RELEASE_STEP
        store = Store(store_url)
        sessions = store.sessions(user="release-user")

        def shipped() -> int:
            texts = [s["text"] for s in store.statements(sessions[0]["id"])]
            return len([t for t in texts if t and marker in t])

        assert flush_wait(lambda: shipped() == 400, timeout=15)
        released = flush_wait(lambda: journal.stat().st_blocks * 512 <= size - 3 * RELEASE_STEP + 64 * 1024,
                              timeout=5)
        assert released, f"{journal.stat().st_blocks * 512} bytes of {size} still on disk"
        assert journal.stat().st_size == size
