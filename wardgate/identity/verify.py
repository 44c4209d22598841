"""Which authenticator a credential is for, and the one place that says why none is."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import Config
from ..store import Store
from .keys import load_or_create
from .model import Authenticator, AuthFailure, Identity
from .oidc import OIDCAuthenticator, unverified_claims
from .tokens import TokenService


def authenticators(config: Config, store: Store) -> list[Authenticator]:
    """The gateway's own tokens first, then each configured identity provider. Built once per process: each
    provider's key cache lives in its authenticator."""
    own: list[Authenticator] = [TokenService(store, load_or_create(store, config.identity.tokens.key_file))]
    return own + [OIDCAuthenticator(p) for p in config.identity.oidc]


def claimed_issuer(credential: str) -> str | None:
    """The issuer a credential claims, unverified, for the audit of a refusal (never the credential itself)."""
    claims = unverified_claims(credential)
    iss = claims.get("iss") if claims else None
    return iss[:200] if isinstance(iss, str) else None


def verify_any(auths: Sequence[Authenticator], credential: str) -> Identity:
    """The identity a credential proves (blocking: keys and revocations may be fetched). Raises AuthFailure."""
    if not credential:
        raise AuthFailure("no token given as password")
    for auth in auths:
        if auth.accepts(credential):
            return auth.verify(credential)
    iss = claimed_issuer(credential)
    if iss is not None:
        raise AuthFailure(f"tokens of the issuer {iss!r} are not accepted by this gateway")
    raise AuthFailure("the password is not a token this gateway accepts")
