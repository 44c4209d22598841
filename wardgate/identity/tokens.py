"""Gateway-issued tokens for service accounts, agents and people without an IdP.

A token is a JWT signed with the gateway's Ed25519 key (EdDSA). Verification is offline (signature, issuer,
expiry) plus one store lookup, which checks revocation and compares the token's SHA-256 with the one recorded at
issue (the store holds only that hash, never a token). A service account's token carries no groups: they are
read from the account at each login, so changing or disabling the account takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from ..store import Store
from ..store.accounts import ServiceAccount, ServiceAccounts
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
    account: str | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    def __init__(self, store: Store, key: SigningKey) -> None:
        self.store = store
        self.key = key

    def create(self, subject: str, groups: list[str], ttl_seconds: float, created_by: str,
               account: ServiceAccount | None = None) -> IssuedToken:
        """A token for a person (``subject`` with ``groups``) or for a service ``account`` (its name and, when the
        token is used, its groups then)."""
        if account is not None:
            if account.disabled_at is not None:
                raise ValueError(f"the service account {account.name} is disabled")
            subject, groups = account.name, []
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
                        "token_hash": token_hash(token),
                        "account": account.name if account else None,
                    },
                )
            ]
        )
        return IssuedToken(token_id, token, subject, account.groups if account else clean_groups, expires,
                           account.name if account else None)

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
        # Tokens issued before hashes were kept have none; the signature and the row still vouch for them.
        if row["token_hash"] is not None and not hmac.compare_digest(row["token_hash"], token_hash(credential)):
            raise AuthFailure("token does not match the one issued under its id")
        groups = claims.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise AuthFailure("token groups claim is malformed")
        if row["account"] is not None:
            account = ServiceAccounts(self.store).get(row["account"])
            if account is None or account.disabled_at is not None:
                raise AuthFailure(f"the service account {row['account']} is disabled")
            groups = list(account.groups)
        return Identity(str(claims["sub"]), tuple(groups), "token", str(claims["jti"]), ISSUER, str(claims["sub"]),
                        float(claims["exp"]))
