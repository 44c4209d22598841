"""Gateway tokens: signed, expiring, revocable; anything else is refused with a reason and no secret."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wardgate.identity.keys import load_or_create
from wardgate.identity.model import AuthFailure
from wardgate.identity.tokens import TokenService
from wardgate.store import Store


@pytest.fixture
def service(tmp_path: Path) -> TokenService:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    return TokenService(store, load_or_create(store, None))


def test_round_trip(service: TokenService) -> None:
    issued = service.create("ann", ["eng", "sre", "eng", " "], 60, "test")
    assert issued.groups == ("eng", "sre")
    assert service.accepts(issued.token)
    ident = service.verify(issued.token)
    assert (ident.subject, ident.groups, ident.method, ident.token_id) == ("ann", ("eng", "sre"), "token", issued.id)


def test_key_is_kept_in_the_store(service: TokenService) -> None:
    again = load_or_create(service.store, None)
    assert again.kid == service.key.kid


def test_key_file(tmp_path: Path, service: TokenService) -> None:
    key_file = tmp_path / "keys" / "signing.pem"
    first = load_or_create(service.store, key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_or_create(service.store, key_file).kid == first.kid


def test_revoked(service: TokenService) -> None:
    issued = service.create("ann", [], 60, "test")
    assert service.store.revoke_token(issued.id)
    with pytest.raises(AuthFailure, match="revoked"):
        service.verify(issued.token)


def test_expired(service: TokenService) -> None:
    issued = service.create("ann", [], 1, "test")
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 120
    forged_exp = jwt.encode(claims, service.key.private, algorithm="EdDSA", headers={"kid": service.key.kid})
    with pytest.raises(AuthFailure, match="expired"):
        service.verify(forged_exp)


def test_forged_with_another_key(service: TokenService) -> None:
    issued = service.create("ann", [], 60, "test")
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    claims["groups"] = ["admin"]
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": service.key.kid})
    with pytest.raises(AuthFailure, match="signature"):
        service.verify(forged)


def test_tampered_payload(service: TokenService) -> None:
    token = service.create("ann", [], 60, "test").token
    head, payload, sig = token.split(".")
    other = service.create("root", ["admin"], 60, "test").token.split(".")[1]
    with pytest.raises(AuthFailure):
        service.verify(f"{head}.{other}.{sig}")
    assert payload != other


def test_alg_none_and_hmac_refused(service: TokenService) -> None:
    claims = {"iss": "wardgate", "aud": "wardgate", "sub": "ann", "jti": "x", "iat": 1, "exp": 2**31}
    none_token = jwt.encode(claims, None, algorithm="none", headers={"kid": service.key.kid})
    with pytest.raises(AuthFailure):
        service.verify(none_token)
    hmac_token = jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": service.key.kid})
    with pytest.raises(AuthFailure):
        service.verify(hmac_token)


def test_unknown_token_id(service: TokenService) -> None:
    claims = {"iss": "wardgate", "aud": "wardgate", "sub": "ann", "jti": "never-issued", "iat": int(time.time()),
              "exp": int(time.time()) + 60}
    token = jwt.encode(claims, service.key.private, algorithm="EdDSA", headers={"kid": service.key.kid})
    with pytest.raises(AuthFailure, match="unknown"):
        service.verify(token)


def test_garbage(service: TokenService) -> None:
    assert not service.accepts("hunter2")
    with pytest.raises(AuthFailure) as exc:
        service.verify("hunter2")
    assert "hunter2" not in exc.value.reason
