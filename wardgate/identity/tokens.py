"""Gateway-issued tokens for services, agents and people without an IdP.

A token is a JWT signed with the gateway's Ed25519 key (EdDSA). Verification is offline (signature, issuer,
expiry) plus one store lookup, which both checks revocation and proves the token was issued by this store.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from ..store import Store
from ..store.db import Write, now
from .keys import SigningKey
from .model import AuthFailure, Identity

ISSUER = "wardgate"
AUDIENCE = "wardgate"
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str
    subject: str
    groups: tuple[str, ...]
    expires_at: datetime


class TokenService:
    def __init__(self, store: Store, key: SigningKey) -> None:
        self.store = store
        self.key = key

    def create(self, subject: str, groups: list[str], ttl_seconds: float, created_by: str) -> IssuedToken:
        if not subject or any(c in subject for c in "\0\r\n"):
            raise ValueError("the user name must be non-empty and on one line")
        token_id = secrets.token_hex(8)
        issued = now()
        expires = issued + timedelta(seconds=ttl_seconds)
        clean_groups = tuple(dict.fromkeys(g.strip() for g in groups if g.strip()))
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "groups": list(clean_groups),
            "jti": token_id,
            "iat": int(issued.timestamp()),
            "nbf": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
        }
        token = jwt.encode(claims, self.key.private, algorithm="EdDSA", headers={"kid": self.key.kid})
        self.store.write(
            [
                Write(
                    "tokens",
                    {
                        "id": token_id,
                        "subject": subject,
                        "groups": json.dumps(list(clean_groups)),
                        "created_at": issued,
                        "expires_at": expires,
                        "revoked_at": None,
                        "created_by": created_by,
                    },
                )
            ]
        )
        return IssuedToken(token_id, token, subject, clean_groups, expires)

    def accepts(self, credential: str) -> bool:
        try:
            claims = jwt.decode(credential, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return claims.get("iss") == ISSUER

    def verify(self, credential: str) -> Identity:
        try:
            header = jwt.get_unverified_header(credential)
        except jwt.PyJWTError:
            raise AuthFailure("the password is not a wardgate token") from None
        if header.get("alg") != "EdDSA" or header.get("kid") != self.key.kid:
            raise AuthFailure("token not signed by this gateway's key")
        try:
            claims = jwt.decode(
                credential,
                self.key.public,
                algorithms=["EdDSA"],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailure("token expired") from None
        except jwt.InvalidSignatureError:
            raise AuthFailure("token signature invalid") from None
        except jwt.PyJWTError as exc:
            raise AuthFailure(f"token invalid: {exc}") from None
        row = self.store.token(str(claims["jti"]))
        if row is None:
            raise AuthFailure("token unknown to this gateway")
        if row["revoked_at"] is not None:
            raise AuthFailure("token revoked")
        if row["expires_at"] < datetime.now(UTC) - timedelta(seconds=LEEWAY_SECONDS):
            raise AuthFailure("token expired")
        groups = claims.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise AuthFailure("token groups claim is malformed")
        return Identity(str(claims["sub"]), tuple(groups), "token", str(claims["jti"]))
