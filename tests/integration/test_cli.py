"""The operator's commands: config validation, connections, tokens, sessions."""

from __future__ import annotations

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
    (demo,) = json.loads(res.stdout)
    assert demo["name"] == "demo" and demo["database"] == "wardgate_demo" and demo["password"] is None
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
