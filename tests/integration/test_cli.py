"""The operator's commands: config validation, connections, tokens, sessions."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import psycopg

from tests.conftest import ROOT, WARDGATE, Gateway, flush_wait


def _run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([*WARDGATE, *args], capture_output=True, text=True, cwd=cwd, timeout=60,
                          env={**os.environ, **(env or {})})


def test_bad_config_is_reported_with_paths_and_serve_refuses_to_start(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("""
tls: {self_signed: true}
listen: {postgres: 127.0.0.1:1, bogus: 1}
connections:
  shop:
    upstream: postgresql://app@db/shop
    password: hunter2
    sslmode: sometimes
""")
    for cmd in (["config", "check"], ["serve"]):
        res = _run(*cmd, "-c", str(cfg))
        assert res.returncode == 2, res.stderr
        assert "listen.bogus: unknown key" in res.stderr
        assert "connections.shop.password: secrets are never written inline" in res.stderr
        assert "connections.shop.sslmode:" in res.stderr
        assert "hunter2" not in res.stderr
        assert "Traceback" not in res.stderr


def test_missing_secret_env_is_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tls: {self_signed: true}\nconnections:\n  s:\n    upstream: postgresql://a@h/d\n"
                   "    password: env:WG_SURELY_UNSET\n")
    res = _run("config", "check", "-c", str(cfg))
    assert res.returncode == 2
    assert "connections.s.password: environment variable WG_SURELY_UNSET is not set" in res.stderr


def test_demo_config_is_valid_and_lists_its_connection() -> None:
    res = _run("connections", "list", "-c", "examples/demo.yaml", "--json")
    assert res.returncode == 0, res.stderr
    demo, readonly = json.loads(res.stdout)
    assert demo["name"] == "demo" and demo["database"] == "wardgate_demo" and demo["password"] is None
    assert readonly["name"] == "demo-readonly" and readonly["read_only"] and not demo["read_only"]
    text = _run("connections", "list", "-c", "examples/demo.yaml").stdout
    assert "demo" in text and "wardgate_demo@127.0.0.1:5432/wardgate_demo" in text


def test_token_lifecycle_and_sessions(gateway: Gateway) -> None:
    created = json.loads(gateway.cli("token", "create", "--user", "cli-user", "--groups", "eng,ops", "--ttl", "30m",
                                     "--json").stdout)
    assert created["groups"] == ["eng", "ops"]
    plain = gateway.cli("token", "create", "--user", "cli-user")
    assert plain.stdout.count(".") == 2 and "expires" in plain.stderr  # token alone on stdout
    with psycopg.connect(gateway.dsn("cli-user", created["token"]), application_name="cli-test") as conn:
        conn.execute("select * from customers where email = 'c1@example.com'")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("truncate customers")
    listed = json.loads(gateway.cli("token", "list", "--user", "cli-user", "--json").stdout)
    assert {t["id"] for t in listed} >= {created["id"]}
    assert all("token" not in t for t in listed)
    assert gateway.cli("token", "revoke", created["id"]).stdout.strip() == f"revoked {created['id']}"
    again = gateway.cli("token", "revoke", created["id"], check=False)
    assert again.returncode == 1 and "already revoked" in again.stderr
    assert "does not exist" in gateway.cli("token", "revoke", "nope", check=False).stderr

    store = gateway.store()
    flush_wait(lambda: [s for s in store.sessions(user="cli-user") if s["ended_at"]])
    sessions = json.loads(gateway.cli("sessions", "list", "--user", "cli-user", "--json").stdout)
    assert len(sessions) == 1 and sessions[0]["application_name"] == "cli-test"
    sid = sessions[0]["id"]
    shown = json.loads(gateway.cli("sessions", "show", sid[:8], "--json").stdout)
    texts = [s["text"] for s in shown["statements"]]
    assert "select * from customers where email = $1" in texts
    assert "c1@example.com" not in json.dumps(shown)
    human = gateway.cli("sessions", "show", sid).stdout
    assert "cli-user" in human and "select * from customers where email = $1" in human
    denied = next(line for line in human.splitlines() if "truncate customers" in line)
    assert "denied" in denied and "no-truncate (deny)" in denied and "42501 TRUNCATE removes every row" in denied
    table = gateway.cli("sessions", "list").stdout
    assert sid[:8] in table and "cli-test" in table
    missing = gateway.cli("sessions", "show", "zzzz", check=False)
    assert missing.returncode == 1 and "no single session" in missing.stderr


def test_token_ttl_is_validated(gateway: Gateway) -> None:
    res = gateway.cli("token", "create", "--user", "x", "--ttl", "400d", check=False)
    assert res.returncode == 2 and "max_ttl" in res.stderr
    res = gateway.cli("token", "create", "--user", "x", "--ttl", "soon", check=False)
    assert res.returncode == 2 and "not a duration" in res.stderr


def test_audit_events_command(gateway: Gateway) -> None:
    from tests.conftest import login_error

    login_error(gateway, "cli-intruder", "guess")
    store = gateway.store()
    flush_wait(lambda: store.events(kind="auth_failed"))
    rows = json.loads(gateway.cli("audit", "events", "--kind", "auth_failed", "--json").stdout)
    assert any(r["subject"] == "cli-intruder" for r in rows)
    assert "guess" not in json.dumps(rows)


def test_serve_flags_and_environment_override_the_file(gateway: Gateway, tmp_path: Path) -> None:
    """Several gateways side by side from one config file: --store/--listen-postgres or WARDGATE_* win."""
    import os
    import signal

    import psycopg

    from tests.conftest import free_port, wait_listening

    port = free_port()
    store_url = f"sqlite:///{tmp_path / 'side.db'}"
    log_path = tmp_path / "side.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*WARDGATE, "serve", "-c", str(gateway.config_path), "--listen-postgres",
                                 f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                                env={**os.environ, "WARDGATE_STORE": store_url})
    try:
        wait_listening(port, proc, log_path)
        env = {"WARDGATE_STORE": store_url}
        token = _run("token", "create", "-c", str(gateway.config_path), "--user", "side-user", env=env).stdout.strip()
        dsn = gateway.dsn("side-user", token).replace(f"port='{gateway.port}'", f"port='{port}'")
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select 7").fetchone() == (7,)
        # The token lives in the side store only: the file's own gateway does not know it.
        res = _run("token", "list", "-c", str(gateway.config_path), "--store", store_url, "--json")
        assert [t["subject"] for t in json.loads(res.stdout)] == ["side-user"]
        assert "side-user" not in _run("token", "list", "-c", str(gateway.config_path), "--json").stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert "127.0.0.1:" + str(port) in log_path.read_text()
    sessions = json.loads(_run("sessions", "list", "-c", str(gateway.config_path), "--json", env=env).stdout)
    assert [s["user"] for s in sessions] == ["side-user"]


def test_mask_test_shows_what_a_detector_does() -> None:
    res = _run("mask", "test", "--detector", "email", "--json",
               "mail Zoë <jane.doe@example.com>, card 4111111111111111")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [(m["detector"], m["value"]) for m in out["matches"]] == [("email", "jane.doe@example.com")]
    assert out["masked"] == "mail Zoë <j*******@*******.com>, card 4111111111111111"  # only the detector asked for
    full = _run("mask", "test", "--style", "full", "card 4111 1111 1111 1111")
    assert "masked (full): card [redacted:credit_card]" in full.stdout
    hashed = _run("mask", "test", "--style", "hash", "--json", "a@b.co")
    assert json.loads(hashed.stdout)["masked"].startswith("h:")
    nothing = _run("mask", "test", "order 2024-01-05 total 1234.56")
    assert nothing.returncode == 1 and "no match" in nothing.stdout
    bad = _run("mask", "test", "--detector", "nope", "x")
    assert bad.returncode == 2 and "no detector named nope" in bad.stderr
