"""The key cache's clock-driven rules and the claim rules, with a controlled clock.

The live tests (tests/integration/test_oidc.py) run the same code against nanoidp; what they cannot do cheaply is
move time: here an in-process transport serves discovery and JWKS documents (real keys, real JWTs) and counts
fetches, and the clock is a variable.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wardgate.config import OIDCConfig
from wardgate.identity.jwks import ProviderKeys
from wardgate.identity.model import AuthFailure
from wardgate.identity.oidc import OIDCAuthenticator, claim

ISSUER = "https://idp.example.com"


class FakeIdP:
    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.jwks_entries: list[dict[str, Any]] = []
        self.fetches = 0
        self.up = True
        self.issuer = ISSUER

    def add_key(self, kid: str, alg: str = "RS256") -> Any:
        key: Any = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else \
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = key
        entry = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        self.jwks_entries.append({**entry, "kid": kid, "use": "sig", "alg": alg})
        return key

    def handler(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("down", request=request)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": self.issuer, "jwks_uri": f"{ISSUER}/jwks"})
        self.fetches += 1
        return httpx.Response(200, json={"keys": self.jwks_entries})

    def token(self, kid: str, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "wardgate", "sub": "u1", "email": "ann@example.com", "iat": now,
                "exp": now + 300, "groups": ["eng"], **claims}
        return jwt.encode(body, self.keys[kid], algorithm=alg, headers={"kid": kid})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _auth(idp: FakeIdP, clock: Clock, **cfg: Any) -> OIDCAuthenticator:
    config = OIDCConfig(issuer=ISSUER, audience=["wardgate"], **cfg)
    client = httpx.Client(transport=httpx.MockTransport(idp.handler))
    return OIDCAuthenticator(config, ProviderKeys(config, clock, client))


def test_unknown_kids_refetch_at_most_once_per_min_refresh() -> None:
    idp, clock = FakeIdP(), Clock()
    idp.add_key("k1")
    auth = _auth(idp, clock, jwks_min_refresh="30s")
    assert auth.verify(idp.token("k1")).subject == "ann@example.com"
    assert idp.fetches == 1
    stranger = FakeIdP()
    stranger.add_key("forged")
    clock.t += 31  # the keys were just fetched: an unknown kid right then fetches nothing; later, once
    for _ in range(50):  # a flood of unknown kids: one fetch, then refusals from the cache
        with pytest.raises(AuthFailure, match="does not publish"):
            auth.verify(stranger.token("forged"))
    assert idp.fetches == 2
    idp.add_key("k2")  # the IdP rotates within the interval: refused until the interval has passed
    with pytest.raises(AuthFailure, match="does not publish"):
        auth.verify(idp.token("k2"))
    clock.t += 31
    assert auth.verify(idp.token("k2")).subject == "ann@example.com"
    assert idp.fetches == 3


def test_stale_keys_serve_an_outage_until_max_stale() -> None:
    idp, clock = FakeIdP(), Clock()
    idp.add_key("k1")
    auth = _auth(idp, clock, jwks_max_age="1h", jwks_max_stale="2h", jwks_min_refresh="30s")
    auth.verify(idp.token("k1"))
    idp.up = False
    clock.t += 3600 + 1  # too old: the refresh fails, the cached key still serves
    auth.verify(idp.token("k1"))
    clock.t += 3600  # beyond max_stale: fail closed
    with pytest.raises(AuthFailure, match="jwks_max_stale"):
        auth.verify(idp.token("k1"))
    idp.up = True
    clock.t += 31
    auth.verify(idp.token("k1"))  # recovers at the next allowed fetch


def test_first_fetch_failure_and_wrong_discovery_issuer_refuse() -> None:
    idp, clock = FakeIdP(), Clock()
    idp.add_key("k1")
    idp.up = False
    auth = _auth(idp, clock)
    with pytest.raises(AuthFailure, match="cannot be reached"):
        auth.verify(idp.token("k1"))
    idp.up, idp.issuer = True, "https://other.example.com"
    clock.t += 60
    with pytest.raises(AuthFailure, match="cannot be reached"):
        auth.verify(idp.token("k1"))


def test_symmetric_and_encryption_keys_in_a_jwks_are_never_used() -> None:
    idp, clock = FakeIdP(), Clock()
    idp.add_key("k1")
    idp.jwks_entries.append({"kty": "oct", "kid": "shared", "k": "c2VjcmV0"})
    idp.jwks_entries.append({**idp.jwks_entries[0], "kid": "enc", "use": "enc"})
    auth = _auth(idp, clock)
    forged = jwt.encode({"iss": ISSUER, "aud": "wardgate", "sub": "x", "iat": 1, "exp": 2**31},
                        "a-shared-secret-of-at-least-32-bytes", algorithm="HS256", headers={"kid": "shared"})
    with pytest.raises(AuthFailure, match="shared-secret"):
        auth.verify(forged)
    good = idp.token("k1")
    _, payload, sig = good.split(".")
    swapped = jwt.api_jws.base64url_encode(json.dumps({"alg": "RS256", "kid": "enc"}).encode()).decode()
    with pytest.raises(AuthFailure, match="does not publish"):
        auth.verify(f"{swapped}.{payload}.{sig}")


def test_key_pinned_to_an_algorithm_refuses_another() -> None:
    idp, clock = FakeIdP(), Clock()
    idp.add_key("rsa")
    auth = _auth(idp, clock)
    token = jwt.encode({"iss": ISSUER, "aud": "wardgate", "sub": "x", "email": "a@b", "iat": int(time.time()),
                        "exp": int(time.time()) + 60}, idp.keys["rsa"], algorithm="PS256", headers={"kid": "rsa"})
    with pytest.raises(AuthFailure, match="published for RS256"):
        auth.verify(token)
    idp2 = FakeIdP()
    idp2.add_key("ec", "ES256")
    assert _auth(idp2, clock).verify(idp2.token("ec", "ES256")).groups == ("eng",)


def test_groups_mapping_and_claim_paths() -> None:
    idp, clock = FakeIdP(), Clock()
    idp.add_key("k1")
    auth = _auth(idp, clock, group_map={"okta-dba": ["dba", "eng"], "x": "y"}, unmapped_groups="drop",
                 username_claim="preferred_username")
    ident = auth.verify(idp.token("k1", groups=["okta-dba", "stray", "x"], preferred_username="ann"))
    assert ident.groups == ("dba", "eng", "y") and ident.subject == "ann" and ident.idp_subject == "u1"
    assert ident.method == "oidc" and ident.issuer == ISSUER
    with pytest.raises(AuthFailure, match="user name claim"):
        auth.verify(idp.token("k1"))
    with pytest.raises(AuthFailure, match="not a list of names"):
        auth.verify(idp.token("k1", groups={"a": 1}, preferred_username="ann"))
    with pytest.raises(AuthFailure, match="not a usable name"):
        auth.verify(idp.token("k1", preferred_username="ann\nroot"))
    assert claim({"realm_access": {"roles": ["a"]}}, "realm_access.roles") == ["a"]
    assert claim({"https://ex.com/groups": ["g"]}, "https://ex.com/groups") == ["g"]
    assert claim({"a": "b"}, "a.b") is None
    assert _auth(idp, clock, groups_claim="realm_access.roles").verify(
        idp.token("k1", realm_access={"roles": "solo"})).groups == ("solo",)


def test_refresh_and_logout_tokens_are_no_credentials() -> None:
    idp, clock = FakeIdP(), Clock()
    idp.add_key("k1")
    auth = _auth(idp, clock)
    for extra in ({"token_use": "refresh"}, {"typ": "Refresh"}, {"typ": "Logout"}):
        with pytest.raises(AuthFailure, match="not a login credential"):
            auth.verify(idp.token("k1", **extra))
    with pytest.raises(AuthFailure, match="lacks the iat"):
        auth.verify(jwt.encode({"iss": ISSUER, "aud": "wardgate", "sub": "x", "exp": 2**31}, idp.keys["k1"],
                               algorithm="RS256", headers={"kid": "k1"}))
