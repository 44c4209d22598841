"""OIDC tokens from a real provider (nanoidp over TLS) through the gateway: accepted, mapped, audited, refused.

Every refusal of the matrix (issue 7) ends in a 28P01 naming the reason, an ``auth_failed`` event, and neither the
token nor its signature in the gateway's log or store. Forged tokens are made the way an attacker would: by
editing a real token, or by signing with a key that is not the provider's; the provider's own private key signs
only tokens that differ from real ones in a single claim (expiry, audience...), to prove that one check holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import psycopg
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Gateway, UpstreamDB, flush_wait, free_port, login_error, run_gateway
from tests.oidc_idp import IdPUser, NanoIdP, pkce_pair, running_idp

USERS = [
    IdPUser("alice", "alice-pw", "alice@example.com", ["eng", "dba"]),
    IdPUser("bob", "bob-pw", "bob@example.com", ["support"]),
    IdPUser("carol", "carol-pw", "carol@example.com", []),
    IdPUser("dave", "dave-pw", "dave@example.com", ["contractors"],
            attributes={"realm_access": {"roles": ["eng"]}}),
]


def oidc_config(idp: NanoIdP, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "issuer": idp.issuer,
        "audience": [idp.audience, idp.client_id],
        "client_id": idp.client_id,
        "ca_file": str(idp.ca_file),
        "username_claim": "sub",  # nanoidp's tokens name the user only in sub
        "group_map": {"support": "support-staff"},
        "allowed_groups": ["eng", "dba", "support-staff"],
        "jwks_min_refresh": "1s",
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NanoIdP]:
    with running_idp(tmp_path_factory.mktemp("idp"), USERS) as provider:
        yield provider


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, idp: NanoIdP, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    extra = {"identity": {"oidc": [oidc_config(idp)]}, "listen": {"api": f"127.0.0.1:{free_port()}"}}
    with run_gateway(tmp_path_factory.mktemp("oidc"), upstream, extra=extra) as g:
        yield g


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def _assemble(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)])


def _no_secret(gw: Gateway, token: str) -> None:
    sig = token.rsplit(".", maxsplit=1)[-1]
    assert token not in gw.log() and (not sig or sig not in gw.log())
    with gw.store().engine.connect() as conn:
        for table in ("events", "sessions", "statements", "tokens"):
            dump = repr(conn.exec_driver_sql(f"SELECT * FROM {table}").fetchall())
            assert token not in dump and (not sig or sig not in dump)


def _sessions(gw: Gateway, user: str, n: int = 1) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = flush_wait(lambda: [r for r in gw.store().sessions(user=user)][:n]
                                            if len(gw.store().sessions(user=user)) >= n else [])
    assert len(rows) >= n
    return rows


def test_access_token_opens_a_session_with_mapped_groups(gw: Gateway, idp: NanoIdP) -> None:
    token = idp.password_tokens("alice", "alice-pw")["access_token"]
    with psycopg.connect(gw.dsn("alice", token)) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    (s,) = _sessions(gw, "alice")
    assert s["auth_method"] == "oidc" and s["issuer"] == idp.issuer and s["idp_subject"] == "alice"
    assert s["groups"] == ["eng", "dba"]
    assert s["token_id"] == _parts(token)[1]["jti"]
    shown = gw.cli("sessions", "show", s["id"]).stdout
    assert f"identity    alice at {idp.issuer}" in shown and "via oidc" in shown
    token = idp.password_tokens("bob", "bob-pw")["access_token"]
    with psycopg.connect(gw.dsn("bob", token)) as conn:
        conn.execute("select 1")
    assert _sessions(gw, "bob")[0]["groups"] == ["support-staff"]
    _no_secret(gw, token)


def test_id_token_is_accepted_too(gw: Gateway, idp: NanoIdP) -> None:
    """An ID token (aud: the client id) from the code flow, which asks for the groups claim in it."""
    verifier, challenge = pkce_pair()
    redirect = "http://127.0.0.1:8976/callback"
    url = idp.authorize_url(redirect, challenge, "st", "openid profile", claims={"id_token": {"groups": None}})
    code = parse_qs(urlsplit(idp.login_browser(url, "alice", "alice-pw")).query)["code"][0]
    tokens = idp.exchange_code(code, redirect, verifier)
    assert _parts(tokens["id_token"])[1]["aud"] == idp.client_id
    with psycopg.connect(gw.dsn("alice", tokens["id_token"])) as conn:
        assert conn.execute("select current_user").fetchone() is not None


def test_http_api_takes_the_same_tokens(gw: Gateway, idp: NanoIdP) -> None:
    api = _api(gw)
    token = idp.password_tokens("alice", "alice-pw", scope="profile")["access_token"]
    with httpx.Client(base_url=api, verify=gw.tls_context()) as client:
        me = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json() | {"expires_at": None} == {
            "user": "alice", "groups": ["eng", "dba"], "method": "oidc", "issuer": idp.issuer, "subject": "alice",
            "expires_at": None}
        ran = client.post("/api/v1/exec", json={"connection": "app", "sql": "select 41 + 1"},
                          headers={"Authorization": f"Bearer {token}"})
        assert ran.status_code == 200 and ran.json()["results"][0]["rows"] == [["42"]], ran.text
        refused = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
        assert refused.status_code == 401 and "signature" in refused.json()["detail"]
        public = client.get("/api/v1/login").json()
        assert public["providers"] == [{"issuer": idp.issuer, "client_id": idp.client_id,
                                        "scopes": ["openid", "profile", "email", "offline_access"],
                                        "audience": [idp.audience, idp.client_id]}]


def test_wardgate_exec_with_an_oidc_token(gw: Gateway, idp: NanoIdP) -> None:
    token = idp.password_tokens("alice", "alice-pw", scope="profile")["access_token"]
    out = gw.cli("exec", "app", "--sql", "select 'via exec'", "--token", token).stdout
    assert "via exec" in out


def _api(gw: Gateway) -> str:
    cfg = yaml.safe_load(gw.config_path.read_text())
    base = f"https://{cfg['listen']['api']}"
    flush_wait(lambda: _answers(base, gw))
    return base


def _answers(base: str, gw: Gateway) -> bool:
    try:
        return httpx.get(f"{base}/api/openapi.json", verify=gw.tls_context(), timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _refusal(gw: Gateway, user: str, token: str, reason: str) -> None:
    code, msg = login_error(gw, user, token)
    assert code == "28P01", (code, msg)
    assert f'authentication failed for user "{user}"' in msg and reason in msg, msg
    store = gw.store()
    assert flush_wait(lambda: [e for e in store.events(kind="auth_failed")
                               if e["subject"] == user and reason in e["detail"]["reason"]]), "no auth_failed event"
    _no_secret(gw, token)


def _signed(idp: NanoIdP, claims: dict[str, Any], **header: Any) -> str:
    """A token signed with the provider's own key (to change one claim of a real token and nothing else)."""
    return jwt.encode(claims, idp.private_key_pem(), algorithm="RS256", headers={"kid": idp.active_kid(), **header})


@pytest.mark.parametrize("case", [
    "expired", "not_yet_valid", "wrong_audience", "wrong_issuer", "alg_none", "hs256_with_public_key",
    "tampered_payload", "unknown_kid", "no_allowed_group", "no_groups_claim", "refresh_token", "other_user",
    "garbage",
])
def test_refusal_matrix(gw: Gateway, idp: NanoIdP, case: str) -> None:
    tokens = idp.password_tokens("alice", "alice-pw", scope="offline_access")
    real = tokens["access_token"]
    header, claims = _parts(real)
    now = int(time.time())
    user = f"alice-{case}" if case in ("other_user",) else "alice"
    if case == "expired":
        token, reason = _signed(idp, {**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}), "expired"
    elif case == "not_yet_valid":
        token, reason = _signed(idp, {**claims, "nbf": now + 3600}), "not valid yet"
    elif case == "wrong_audience":
        token, reason = _signed(idp, {**claims, "aud": "another-api"}), "not meant for this gateway"
    elif case == "wrong_issuer":
        token, reason = _signed(idp, {**claims, "iss": "https://evil.example.com"}), "are not accepted"
    elif case == "alg_none":
        token, reason = _assemble({"alg": "none", "typ": "JWT"}, {**claims, "groups": ["dba"]}, b""), "unsigned"
    elif case == "hs256_with_public_key":
        head = {"alg": "HS256", "typ": "JWT", "kid": header["kid"]}
        signing_input = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(claims).encode())}"
        mac = hmac.new(idp.public_key_pem(), signing_input.encode(), hashlib.sha256).digest()
        token, reason = f"{signing_input}.{_b64(mac)}", "shared-secret algorithm"
    elif case == "tampered_payload":
        h, _, sig = real.split(".")
        token = f"{h}.{_b64(json.dumps({**claims, 'groups': ['dba', 'admin']}).encode())}.{sig}"
        reason = "signature is invalid"
    elif case == "unknown_kid":
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "not-a-kid-of-the-idp"})
        reason = "does not publish"
    elif case == "no_allowed_group":
        user = "dave"
        token, reason = idp.password_tokens("dave", "dave-pw", scope="profile")["access_token"], "none of the groups"
    elif case == "no_groups_claim":
        user = "carol"
        token, reason = idp.password_tokens("carol", "carol-pw", scope="profile")["access_token"], \
            "none of the groups"
    elif case == "refresh_token":
        token, reason = tokens["refresh_token"], "not a login credential"
    elif case == "other_user":
        token, reason = real, 'belongs to "alice"'
    else:
        token, reason = "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "not a token this gateway accepts"
    _refusal(gw, user, token, reason)


def test_nested_groups_claim(upstream: UpstreamDB, idp: NanoIdP, tmp_path: Path) -> None:
    """groups_claim as a dotted path (Keycloak's realm_access.roles; nanoidp nests user attributes)."""
    extra = {"identity": {"oidc": [oidc_config(idp, groups_claim="attributes.realm_access.roles",
                                               allowed_groups=["eng"])]}}
    with run_gateway(tmp_path, upstream, extra=extra) as g:
        token = idp.password_tokens("dave", "dave-pw", scope="profile")["access_token"]
        with psycopg.connect(g.dsn("dave", token)) as conn:
            conn.execute("select 1")
        assert _sessions(g, "dave")[0]["groups"] == ["eng"]
        _refusal(g, "bob", idp.password_tokens("bob", "bob-pw", scope="profile")["access_token"],
                 "none of the groups")


def test_key_rotation(upstream: UpstreamDB, tmp_path: Path) -> None:
    """A new key is fetched when a token names it; a key the provider stops publishing stops working."""
    with running_idp(tmp_path / "idp", USERS[:1]) as provider, \
            run_gateway(tmp_path / "gw", upstream, extra={"identity": {"oidc": [oidc_config(provider)]}}) as g:
        def login(token: str) -> None:
            with psycopg.connect(g.dsn("alice", token)) as conn:
                conn.execute("select 1")

        old = provider.password_tokens("alice", "alice-pw", scope="profile")["access_token"]
        login(old)
        time.sleep(1.1)  # past jwks_min_refresh
        provider.rotate_key(keep_old=True)
        new = provider.password_tokens("alice", "alice-pw", scope="profile")["access_token"]
        assert _parts(new)[0]["kid"] != _parts(old)[0]["kid"]
        login(new)
        login(old)  # still published: still good
        time.sleep(1.1)
        provider.rotate_key(keep_old=False)
        newest = provider.password_tokens("alice", "alice-pw", scope="profile")["access_token"]
        login(newest)  # unknown kid: the gateway refreshes, and now holds only the newest key
        _refusal(g, "alice", old, "does not publish")
        assert "signing keys of" in g.log() and "changed" in g.log()


def test_provider_outage_is_bounded(upstream: UpstreamDB, tmp_path: Path) -> None:
    """Keys already fetched carry logins through a short outage, up to jwks_max_stale; then logins fail closed.
    A provider never reached refuses every token of its issuer."""
    with running_idp(tmp_path / "idp", USERS[:1]) as provider:
        cfg = oidc_config(provider, jwks_max_age="1s", jwks_max_stale="4s", jwks_min_refresh="1s")
        with run_gateway(tmp_path / "gw", upstream, extra={"identity": {"oidc": [cfg]}}) as g:
            token = provider.password_tokens("alice", "alice-pw", scope="profile")["access_token"]
            with psycopg.connect(g.dsn("alice", token)) as conn:
                conn.execute("select 1")
            fetched = time.monotonic()
            provider.stop()
            time.sleep(1.5)  # keys older than max_age, the refresh fails: still within max_stale
            with psycopg.connect(g.dsn("alice", token)) as conn:
                conn.execute("select 1")
            assert "cannot refresh the signing keys" in g.log()
            time.sleep(max(0.0, fetched + 4.5 - time.monotonic()))
            _refusal(g, "alice", token, "could not be refreshed for longer than jwks_max_stale")
            provider.start()
            time.sleep(1.1)
            with psycopg.connect(g.dsn("alice", token)) as conn:  # recovers with the provider
                conn.execute("select 1")
    dead = {"issuer": "https://127.0.0.1:9", "audience": "wardgate", "username_claim": "sub"}
    with run_gateway(tmp_path / "gw2", upstream, extra={"identity": {"oidc": [dead]}}) as g:
        forged = jwt.encode({"iss": "https://127.0.0.1:9", "aud": "wardgate", "sub": "alice", "iat": int(time.time()),
                             "exp": int(time.time()) + 60}, rsa.generate_private_key(public_exponent=65537,
                                                                                     key_size=2048),
                            algorithm="RS256", headers={"kid": "k"})
        _refusal(g, "alice", forged, "cannot be reached")


def test_config_refuses_weak_settings(tmp_path: Path) -> None:
    from wardgate.config import ConfigError, load_config

    base = {"store": f"sqlite:///{tmp_path}/w.db", "tls": {"self_signed": True}}
    for oidc, needle in [
        ({"issuer": "http://idp.example.com", "audience": "x"}, "https://"),
        ({"issuer": "https://idp.example.com", "audience": "x", "algorithms": ["HS256"]}, "HS*"),
        ({"issuer": "https://idp.example.com", "audience": "x", "algorithms": ["none"]}, "none"),
        ({"issuer": "https://idp.example.com", "audience": []}, "audience"),
        ({"issuer": "https://idp.example.com", "audience": "x", "jwks_max_stale": "1m", "jwks_max_age": "1h"},
         "jwks_max_stale"),
    ]:
        path = tmp_path / "c.yaml"
        path.write_text(json.dumps({**base, "identity": {"oidc": [oidc]}}))
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert needle in str(err.value), err.value


def test_several_issuers_side_by_side(upstream: UpstreamDB, idp: NanoIdP, tmp_path: Path) -> None:
    """Two providers: each one's tokens verify against its own keys only; a token claiming the other issuer is
    refused, however validly its own provider signed it."""
    with running_idp(tmp_path / "idp2", [IdPUser("erin", "erin-pw", "erin@example.com", ["eng"])]) as second:
        extra = {"identity": {"oidc": [oidc_config(idp), oidc_config(second, group_map={})]}}
        with run_gateway(tmp_path / "gw", upstream, extra=extra) as g:
            for provider, user, pw in ((idp, "alice", "alice-pw"), (second, "erin", "erin-pw")):
                token = provider.password_tokens(user, pw, scope="profile")["access_token"]
                with psycopg.connect(g.dsn(user, token)) as conn:
                    conn.execute("select 1")
                assert _sessions(g, user)[0]["issuer"] == provider.issuer
            _, claims = _parts(second.password_tokens("erin", "erin-pw", scope="profile")["access_token"])
            crossed = _signed(second, {**claims, "iss": idp.issuer})
            _refusal(g, "erin", crossed, "does not publish")
