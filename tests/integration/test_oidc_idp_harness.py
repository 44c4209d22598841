"""The OIDC provider harness (tests/oidc_idp.py) against the real nanoidp: every flow the gateway's identity tests
rely on, end to end, with tokens checked by PyJWT against the provider's JWKS. If these fail, the harness (or the
nanoidp pin) is broken, not the gateway."""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.oidc_idp import DEFAULT_AUDIENCE, DEFAULT_CLIENT_ID, IdPError, IdPUser, NanoIdP, free_port, running_idp

TTL = 5  # seconds: short enough to watch an access token expire and be refreshed

USERS = [
    IdPUser("alice", "alice-pw", "alice@example.com", ["eng", "dba"],
            attributes={"realm_access": {"roles": ["eng", "dba"]}}),
    IdPUser("bob", "bob-pw", "bob@example.com", ["support"], roles=["viewer"]),
    IdPUser("carol", "carol-pw", "carol@example.com", []),
]


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NanoIdP]:
    with running_idp(tmp_path_factory.mktemp("idp"), USERS, access_token_ttl=TTL) as provider:
        yield provider


def tls(idp: NanoIdP) -> ssl.SSLContext:
    assert idp.ca_file is not None
    return ssl.create_default_context(cafile=str(idp.ca_file))


def verify(idp: NanoIdP, token: str, audience: str) -> dict[str, Any]:
    """What a relying party does: the key named by the header's kid, from the JWKS fetched over TLS with the CA."""
    with httpx.Client(verify=tls(idp)) as http:
        jwks = http.get(idp.discovery()["jwks_uri"]).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid].key
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=idp.issuer,
                                        options={"require": ["exp", "iat", "iss", "sub", "aud"]})
    return claims


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_discovery_is_served_over_tls_with_the_issuer_we_fetch(idp: NanoIdP) -> None:
    assert idp.issuer.startswith("https://127.0.0.1:")
    with httpx.Client(verify=tls(idp)) as http:
        doc = http.get(f"{idp.issuer}/.well-known/openid-configuration").json()
    assert doc["issuer"] == idp.issuer
    for endpoint in ("jwks_uri", "token_endpoint", "authorization_endpoint", "device_authorization_endpoint"):
        assert doc[endpoint].startswith(idp.issuer + "/")
    assert "urn:ietf:params:oauth:grant-type:device_code" in doc["grant_types_supported"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    # The certificate is really checked: without the test CA the connection is refused.
    with pytest.raises(httpx.ConnectError), httpx.Client() as http:
        http.get(f"{idp.issuer}/.well-known/openid-configuration")


def test_password_grant_tokens_verify_against_the_jwks(idp: NanoIdP) -> None:
    tokens = idp.password_tokens("alice", "alice-pw")
    assert tokens["expires_in"] == TTL
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] in {key["kid"] for key in idp.jwks()["keys"]}

    access = verify(idp, tokens["access_token"], DEFAULT_AUDIENCE)
    assert access["aud"] == DEFAULT_AUDIENCE == idp.audience
    assert access["iss"] == idp.issuer
    assert access["sub"] == "alice"
    assert access["groups"] == ["eng", "dba"]
    assert access["token_use"] == "access"
    assert access["client_id"] == DEFAULT_CLIENT_ID
    assert access["exp"] - access["iat"] == TTL

    id_token = verify(idp, tokens["id_token"], idp.client_id)
    assert id_token["aud"] == DEFAULT_CLIENT_ID
    assert id_token["token_use"] == "id"
    assert id_token["exp"] - id_token["iat"] == TTL

    # The refresh token is a JWT that passes signature, iss and aud too: only token_use tells it apart.
    refresh = verify(idp, tokens["refresh_token"], DEFAULT_AUDIENCE)
    assert refresh["token_use"] == "refresh"


def test_groups_per_user(idp: NanoIdP) -> None:
    bob = verify(idp, idp.password_tokens("bob", "bob-pw")["access_token"], DEFAULT_AUDIENCE)
    assert bob["groups"] == ["support"]
    assert bob["roles"] == ["viewer"]
    carol = verify(idp, idp.password_tokens("carol", "carol-pw")["access_token"], DEFAULT_AUDIENCE)
    assert "groups" not in carol  # nanoidp leaves the claim out for a user without groups
    with pytest.raises(IdPError, match="invalid_grant"):
        idp.password_tokens("alice", "wrong")


def test_nested_claims(idp: NanoIdP) -> None:
    access = verify(idp, idp.password_tokens("alice", "alice-pw")["access_token"], DEFAULT_AUDIENCE)
    assert access["attributes"]["realm_access"]["roles"] == ["eng", "dba"]
    extra = idp.password_tokens("carol", "carol-pw", extra_claims={"realm_access": {"roles": ["auditors"]}})
    assert verify(idp, extra["access_token"], DEFAULT_AUDIENCE)["realm_access"]["roles"] == ["auditors"]


def test_device_flow_end_to_end(idp: NanoIdP) -> None:
    meta = idp.discovery()
    with httpx.Client(verify=tls(idp)) as http:
        started = http.post(meta["device_authorization_endpoint"],
                            data={"client_id": idp.client_id, "scope": "openid offline_access"})
        assert started.status_code == 200, started.text
        grant = started.json()
        assert grant["verification_uri"] == f"{idp.issuer}/device"
        poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": grant["device_code"],
                "client_id": idp.client_id}
        pending = http.post(meta["token_endpoint"], data=poll)
        assert pending.status_code == 400
        assert pending.json()["error"] == "authorization_pending"

        idp.approve_device(grant["user_code"], "bob", "bob-pw")

        deadline = time.monotonic() + 10
        while True:
            time.sleep(grant["interval"])
            response = http.post(meta["token_endpoint"], data=poll)
            if response.status_code == 200:
                break
            assert response.json()["error"] in ("authorization_pending", "slow_down"), response.text
            assert time.monotonic() < deadline, "no tokens after approval"
    tokens = response.json()
    access = verify(idp, tokens["access_token"], DEFAULT_AUDIENCE)
    assert access["sub"] == "bob"
    assert access["groups"] == ["support"]
    assert verify(idp, tokens["id_token"], idp.client_id)["sub"] == "bob"
    assert tokens["refresh_token"]

    other = idp.device_authorization()
    with pytest.raises(IdPError, match="Invalid username or password"):
        idp.approve_device(other["user_code"], "bob", "wrong")


def test_authorization_code_with_pkce_and_a_loopback_redirect(idp: NanoIdP) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"  # any port: RFC 8252 loopback matching
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": idp.client_id, "redirect_uri": redirect_uri,
              "scope": "openid email offline_access", "state": state, "nonce": nonce,
              "code_challenge": challenge, "code_challenge_method": "S256",
              "claims": '{"id_token": {"groups": null, "email": null}}'}
    url = f"{idp.discovery()['authorization_endpoint']}?{urllib.parse.urlencode(params)}"

    location = idp.login_browser(url, "alice", "alice-pw")

    assert location.startswith(redirect_uri + "?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["state"] == state
    assert query["iss"] == idp.issuer  # RFC 9207
    with httpx.Client(verify=tls(idp)) as http:
        exchange = {"grant_type": "authorization_code", "code": query["code"], "client_id": idp.client_id,
                    "redirect_uri": redirect_uri, "code_verifier": verifier}
        response = http.post(idp.discovery()["token_endpoint"], data=exchange)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert verify(idp, tokens["access_token"], DEFAULT_AUDIENCE)["groups"] == ["eng", "dba"]
    id_token = verify(idp, tokens["id_token"], idp.client_id)
    assert id_token["nonce"] == nonce
    assert id_token["groups"] == ["eng", "dba"]  # asked for by name through the claims parameter
    assert id_token["email"] == "alice@example.com"

    with pytest.raises(IdPError, match="Invalid username or password"):
        idp.login_browser(url, "alice", "wrong")


def test_refresh_after_the_access_token_expired(idp: NanoIdP) -> None:
    tokens = idp.password_tokens("alice", "alice-pw")
    verify(idp, tokens["access_token"], DEFAULT_AUDIENCE)
    time.sleep(TTL + 1)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(idp, tokens["access_token"], DEFAULT_AUDIENCE)

    refreshed = idp.refresh(tokens["refresh_token"])

    access = verify(idp, refreshed["access_token"], DEFAULT_AUDIENCE)
    assert access["sub"] == "alice"
    assert access["groups"] == ["eng", "dba"]
    assert refreshed["refresh_token"] != tokens["refresh_token"]  # public client: rotation is always on
    with pytest.raises(IdPError, match="revoked"):
        idp.refresh(tokens["refresh_token"])


def test_key_rotation(tmp_path: Path) -> None:
    with running_idp(tmp_path, USERS[:1]) as idp:
        first = idp.password_tokens("alice", "alice-pw")["access_token"]
        old_kid = jwt.get_unverified_header(first)["kid"]
        assert idp.active_kid() == old_kid
        public = serialization.load_pem_public_key(idp.public_key_pem())
        assert isinstance(public, rsa.RSAPublicKey)
        assert jwt.PyJWK(idp.jwks()["keys"][0]).key.public_numbers() == public.public_numbers()

        kept_kid = idp.rotate_key(keep_old=True)

        second = idp.password_tokens("alice", "alice-pw")["access_token"]
        assert kept_kid != old_kid
        assert jwt.get_unverified_header(second)["kid"] == kept_kid
        assert [key["kid"] for key in idp.jwks()["keys"]] == [kept_kid, old_kid]
        verify(idp, first, DEFAULT_AUDIENCE)  # still verifiable: the old key stayed in the JWKS
        verify(idp, second, DEFAULT_AUDIENCE)

        new_kid = idp.rotate_key(keep_old=False)

        third = idp.password_tokens("alice", "alice-pw")["access_token"]
        assert jwt.get_unverified_header(third)["kid"] == new_kid
        assert [key["kid"] for key in idp.jwks()["keys"]] == [new_kid]
        verify(idp, third, DEFAULT_AUDIENCE)
        with pytest.raises(KeyError):
            verify(idp, first, DEFAULT_AUDIENCE)
        signing = serialization.load_pem_private_key(idp.private_key_pem(), password=None)
        assert isinstance(signing, rsa.RSAPrivateKey)
        forged = jwt.encode({"iss": idp.issuer, "sub": "alice", "aud": DEFAULT_AUDIENCE, "iat": int(time.time()),
                             "exp": int(time.time()) + 60}, signing, algorithm="RS256", headers={"kid": new_kid})
        assert verify(idp, forged, DEFAULT_AUDIENCE)["sub"] == "alice"


def test_plain_http_when_asked(tmp_path: Path) -> None:
    with running_idp(tmp_path, USERS[2:], tls=False) as idp:
        assert idp.issuer.startswith("http://127.0.0.1:")
        assert idp.ca_file is None
        tokens = idp.password_tokens("carol", "carol-pw")
        assert unverified(tokens["access_token"])["iss"] == idp.issuer == idp.discovery()["issuer"]
        assert tokens["expires_in"] == 300


def test_a_start_that_fails_raises_with_the_log(tmp_path: Path) -> None:
    # nanoidp refuses the configuration and exits; its own validation message reaches the test through the log.
    with (pytest.raises(RuntimeError, match="Invalid email format"),
          running_idp(tmp_path, [IdPUser("dave", "pw", "not-an-email", [])])):
        pass
