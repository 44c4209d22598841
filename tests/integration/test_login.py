"""`wardgate login` (device flow and browser + PKCE), `whoami` and `logout`, against nanoidp and a real gateway.

The tests play the user's browser with the provider's real pages (tests/oidc_idp.py); the CLI runs as a
subprocess with its own config directory, as on a laptop.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import WARDGATE, Gateway, UpstreamDB, free_port, run_gateway
from tests.oidc_idp import IdPError, IdPUser, NanoIdP, running_idp

TTL = 6  # seconds: short access tokens, so that refresh is exercised


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NanoIdP]:
    users = [IdPUser("alice", "alice-pw", "alice@example.com", ["eng", "dba"]),
             IdPUser("carol", "carol-pw", "carol@example.com", [])]
    with running_idp(tmp_path_factory.mktemp("idp"), users, access_token_ttl=TTL) as provider:
        yield provider


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, idp: NanoIdP, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    oidc = {"issuer": idp.issuer, "audience": [idp.audience], "client_id": idp.client_id,
            "ca_file": str(idp.ca_file), "username_claim": "sub", "allowed_groups": ["eng"]}
    extra = {"identity": {"oidc": [oidc]}, "listen": {"api": f"127.0.0.1:{free_port()}"}}
    with run_gateway(tmp_path_factory.mktemp("gw"), upstream, extra=extra) as g:
        base = _api(g)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/api/v1/login", verify=g.tls_context(), timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield g


def _api(gw: Gateway) -> str:
    import yaml

    return f"https://{yaml.safe_load(gw.config_path.read_text())['listen']['api']}"


def _cert(gw: Gateway) -> str:
    return str(gw.config_path.parent / "data" / "gateway.crt")


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "WARDGATE_HOME": str(home), "BROWSER": "true"}  # BROWSER: a "browser" that opens nothing


def _cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*WARDGATE, *args], capture_output=True, text=True, env=_env(home), timeout=60)
    if check and res.returncode != 0:
        raise AssertionError(f"wardgate {' '.join(args)} failed ({res.returncode}):\n{res.stderr}")
    return res


def _login(gw: Gateway, idp: NanoIdP, home: Path, user: str, password: str, *flags: str
           ) -> subprocess.CompletedProcess[str]:
    """Run `wardgate login` and be the user's browser for whichever flow it starts."""
    proc = subprocess.Popen([*WARDGATE, "login", "--gateway", _api(gw), "--ca-file", _cert(gw), "--idp-ca-file",
                             str(idp.ca_file), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(home))
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if m := re.search(r"enter the code (\S+)", line):
                idp.approve_device(m.group(1), user, password)
                break
            if line.startswith("https://") and "code_challenge=" in line:
                location = idp.login_browser(line.strip(), user, password)
                assert location.startswith("http://127.0.0.1:"), location
                assert httpx.get(location, timeout=10).status_code == 200  # the browser follows the redirect
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode or 0, out, "".join(lines) + err)


def _stored(home: Path) -> dict[str, object]:
    path = home / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    return data["profiles"][data["default"]]  # type: ignore[no-any-return]


def test_device_flow_login_whoami_refresh_logout(gw: Gateway, idp: NanoIdP, tmp_path: Path) -> None:
    res = _login(gw, idp, tmp_path, "alice", "alice-pw")
    assert res.returncode == 0, res.stderr
    assert "logged in to" in res.stderr and "as alice (groups: eng, dba)" in res.stderr
    prof = _stored(tmp_path)
    assert prof["user"] == "alice" and prof["postgres"] == f"127.0.0.1:{gw.port}" and prof["refresh_token"]
    me = _cli(tmp_path, "whoami").stdout
    assert re.search(r"user\s+alice", me) and re.search(r"groups\s+eng, dba", me) and idp.issuer in me
    ran = _cli(tmp_path, "exec", "app", "--sql", "select 'as ' || current_setting('application_name')")
    assert "as wardgate exec" in ran.stdout  # exec with the stored login: no token, no config
    first = prof["access_token"]
    time.sleep(TTL + 1)  # the access token has expired: whoami refreshes it first
    me = _cli(tmp_path, "whoami").stdout
    assert "alice" in me
    refreshed = _stored(tmp_path)
    assert refreshed["access_token"] != first and refreshed["refresh_token"] != prof["refresh_token"]
    out = _cli(tmp_path, "logout").stdout
    assert "logged out of" in out and "revoked" in out
    with pytest.raises(IdPError):
        idp.refresh(str(refreshed["refresh_token"]))  # revoked at the provider, not only forgotten here
    res = _cli(tmp_path, "whoami", check=False)
    assert res.returncode == 1 and "wardgate login" in res.stderr


def test_browser_login_with_pkce(gw: Gateway, idp: NanoIdP, tmp_path: Path) -> None:
    res = _login(gw, idp, tmp_path, "alice", "alice-pw", "--browser")
    assert res.returncode == 0, res.stderr
    assert "as alice" in res.stderr
    assert _stored(tmp_path)["user"] == "alice"


def test_login_the_gateway_would_refuse_fails_at_once(gw: Gateway, idp: NanoIdP, tmp_path: Path) -> None:
    res = _login(gw, idp, tmp_path, "carol", "carol-pw")
    assert res.returncode == 1
    assert "none of the groups" in res.stderr
    assert not (tmp_path / "credentials.json").exists()


def test_credentials_readable_by_others_are_refused(gw: Gateway, idp: NanoIdP, tmp_path: Path) -> None:
    assert _login(gw, idp, tmp_path, "alice", "alice-pw").returncode == 0
    (tmp_path / "credentials.json").chmod(0o644)
    res = _cli(tmp_path, "whoami", check=False)
    assert res.returncode == 1 and "can be read by other users" in res.stderr


def test_unreachable_gateway_is_a_clear_error(tmp_path: Path) -> None:
    res = _cli(tmp_path, "login", "--gateway", f"https://127.0.0.1:{free_port()}", check=False)
    assert res.returncode == 1 and "cannot reach the gateway" in res.stderr and "Traceback" not in res.stderr
