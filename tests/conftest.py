"""Shared fixtures: a private upstream database on the real PostgreSQL, and real gateway processes."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from tests.ports import free_port
from wardgate.config import load_config
from wardgate.demo import load as load_demo  # noqa: F401  (re-exported for tests that want the demo data)
from wardgate.identity.keys import load_or_create
from wardgate.identity.tokens import TokenService
from wardgate.store import Store

PG_HOST = os.environ.get("WARDGATE_TEST_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("WARDGATE_TEST_PGPORT", "5432"))
ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} dbname=postgres user=postgres"
ROOT = Path(__file__).resolve().parent.parent
WARDGATE = [sys.executable, "-m", "wardgate.cli"]


def compiled_modules() -> list[Path]:
    """The sources that setup.py compiles with mypyc (pyproject.toml, [tool.wardgate])."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return [ROOT / p for p in tomllib.load(f)["tool"]["wardgate"]["compiled"]]


def pytest_configure(config: pytest.Config) -> None:
    """A compiled module shadows its source: tests run on an older build would test old code, and pass."""
    # The code of every listed module is in one shared library (setup.py's group); each module's own .so only
    # forwards to it, and an incremental build (`setup.py build_ext --inplace`) leaves those as they were.
    group = list((ROOT / "wardgate").glob("_compiled__mypyc.*.so"))
    if not group:
        return  # not built: tests/unit/test_compiled.py says so
    built_at = max(p.stat().st_mtime for p in group)
    stale = [str(src.relative_to(ROOT)) for src in compiled_modules() if built_at < src.stat().st_mtime]
    if stale:
        raise pytest.UsageError(f"compiled modules older than their sources: {', '.join(stale)}; rebuild them "
                                f"with `make .venv/bin/.installed` (or `.venv/bin/pip install --no-deps -e .`)")


def _require_postgres() -> None:
    try:
        psycopg.connect(ADMIN_DSN, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({exc}). Start it with: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            pytrace=False,
        )


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


@dataclass
class UpstreamDB:
    """A database and role of its own on the shared server, with a small customers table."""

    name: str
    role: str

    @property
    def dsn(self) -> str:
        return f"host={PG_HOST} port={PG_PORT} dbname={self.name} user={self.role}"

    def connect(self, **kw: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, **kw)


@pytest.fixture(scope="session")
def upstream() -> Iterator[UpstreamDB]:
    _require_postgres()
    db = UpstreamDB(unique("wgt_db"), unique("wgt_role"))
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(db.role)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db.name),
                                                                    sql.Identifier(db.role)))
    with db.connect() as conn:
        conn.execute("""CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                        card_number text, balance numeric(10,2), active boolean, joined date,
                        tags text[], profile jsonb)""")
        conn.execute("""INSERT INTO customers
            SELECT i, 'Customer ' || i, 'c' || i || '@example.com', '4111111111111111', i * 1.5, i % 2 = 0,
                   date '2024-01-01' + i, ARRAY['t' || i, 'x'], jsonb_build_object('n', i, 'k', 'v' || i)
            FROM generate_series(1, 50) AS i""")
    yield db
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(db.role)))


@dataclass
class Gateway:
    """A `wardgate serve` process and the means to talk to it."""

    config_path: Path
    port: int
    store_url: str
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)
    env: dict[str, str] = field(default_factory=dict)
    _tokens: TokenService | None = None

    def token(self, user: str, groups: str = "eng", ttl: float = 3600) -> str:
        if self._tokens is None:
            from unittest import mock

            with mock.patch.dict(os.environ, self.env):  # the config may reference secrets given to the gateway
                cfg = load_config(self.config_path)
            store = Store(self.store_url)
            self._tokens = TokenService(store, load_or_create(store, cfg.identity.tokens.key_file))
        return self._tokens.create(user, groups.split(","), ttl, "tests").token

    def dsn(self, user: str, token: str, dbname: str = "app", sslmode: str = "require", **extra: str) -> str:
        parts = {"host": "127.0.0.1", "port": str(self.port), "dbname": dbname, "user": user,
                 "password": token, "sslmode": sslmode, **extra}
        return " ".join(f"{k}='{v}'" for k, v in parts.items())

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*WARDGATE, *args, "-c", str(self.config_path)], capture_output=True, text=True,
                             cwd=self.workdir, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"wardgate {' '.join(args)} failed ({res.returncode}):\n{res.stderr}")
        return res

    def tls_context(self) -> ssl.SSLContext:
        """Trusts exactly this gateway's (self-signed) certificate: for HTTPS clients of its API."""
        return ssl.create_default_context(cafile=str(self.config_path.parent / "data" / "gateway.crt"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def store(self) -> Store:
        return Store(self.store_url)


def write_config(path: Path, upstream: UpstreamDB | None, *, store_url: str, port: int,
                 extra: dict[str, Any] | None = None, connection: dict[str, Any] | None = None) -> None:
    conns: dict[str, Any] = {}
    if upstream is not None:
        conns["app"] = {"type": "postgres", "upstream": f"postgresql://{upstream.role}@{PG_HOST}:{PG_PORT}/"
                                                        f"{upstream.name}", **(connection or {})}
    cfg: dict[str, Any] = {
        "store": store_url,
        "data_dir": str(path.parent / "data"),
        "listen": {"postgres": f"127.0.0.1:{port}"},
        "tls": {"self_signed": True},
        "connections": conns,
        # Protocol tests raise notices with DO blocks, which the default rule pack refuses; they connect with
        # a token of group "dba", which the test gateways exempt from the pack.
        "policy": {"exempt_groups": ["dba"]},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg))


def wait_listening(port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"gateway did not listen on {port} within {timeout}s:\n{log_path.read_text()}")


@contextlib.contextmanager
def run_gateway(tmp: Path, upstream: UpstreamDB | None, *, store_url: str | None = None,
                extra: dict[str, Any] | None = None, connection: dict[str, Any] | None = None,
                env: dict[str, str] | None = None) -> Iterator[Gateway]:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    store_url = store_url or f"sqlite:///{tmp / 'wardgate.db'}"
    cfg_path = tmp / "wardgate.yaml"
    write_config(cfg_path, upstream, store_url=store_url, port=port, extra=extra, connection=connection)
    gw = Gateway(cfg_path, port, store_url, tmp, log_path=tmp / "gateway.log", env=dict(env or {}))
    with open(gw.log_path, "wb") as log:
        proc = subprocess.Popen([*WARDGATE, "serve", "-c", str(cfg_path), "--log-level", "debug"], cwd=tmp,
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    gw.proc = proc
    try:
        wait_listening(port, proc, gw.log_path)
        yield gw
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_text = gw.log()
        assert "Traceback" not in log_text, f"the gateway logged a traceback:\n{log_text}"


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with run_gateway(tmp_path_factory.mktemp("gw"), upstream) as gw:
        yield gw


def unverified_tls() -> ssl.SSLContext:
    """TLS to a test gateway, whose certificate is self-signed, for clients that take an SSLContext (asyncpg)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def flush_wait(predicate: Any, timeout: float = 10.0) -> Any:
    """Audit writes are asynchronous (batched); poll until ``predicate()`` is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def login_error(gw: Gateway, user: str, password: str, dbname: str = "app", tls: bool = True) -> tuple[str, str]:
    """Try to log in with asyncpg (which exposes the server's SQLSTATE at connect) and return (sqlstate, message)."""
    import asyncio

    import asyncpg

    ctx: ssl.SSLContext | bool = False
    if tls:
        ctx = unverified_tls()

    async def attempt() -> tuple[str, str]:
        try:
            conn = await asyncpg.connect(host="127.0.0.1", port=gw.port, user=user, password=password,
                                         database=dbname, ssl=ctx, timeout=10)
        except asyncpg.PostgresError as exc:
            return str(exc.sqlstate), str(exc)
        await conn.close()
        raise AssertionError(f"login as {user} unexpectedly succeeded")

    return asyncio.run(attempt())


def recorded(gateway: Gateway, user: str, sessions: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The most recent ended session of ``user`` and its statements, once every audit write is in."""
    store = gateway.store()

    def ended() -> list[dict[str, Any]]:
        rows = store.sessions(user=user)
        return rows if len(rows) == sessions and all(s["ended_at"] for s in rows) else []

    rows = flush_wait(ended)
    assert len(rows) == sessions, f"expected {sessions} ended session(s) of {user}: {store.sessions(user=user)}"
    s = rows[0]
    assert s["user"] == user and s["connection"] == "app" and s["protocol"] == "postgres"
    # the clients in these tests end with a Terminate message; the upstream closing in answer to it is no failure
    assert s["end_reason"] == "client terminated", s["end_reason"]
    stmts = store.statements(s["id"])
    assert [st["seq"] for st in stmts] == list(range(1, len(stmts) + 1)), "a statement record is missing"
    return s, stmts


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    """A fresh SQLite store (the embedded default), its schema in place."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    return store


@pytest.fixture
def pg_store_url() -> Iterator[str]:
    """A fresh PostgreSQL database for a store (several replicas share one), dropped afterwards."""
    name = unique("wgt_store")
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
