"""The identity vocabulary shared by every authenticator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified person or agent. ``method`` says which authenticator vouched for them."""

    subject: str  # the user name: what clients log in as and what the audit names
    groups: tuple[str, ...]  # the groups decisions use (after an IdP's group mapping)
    method: str  # "token" (gateway-issued) or "oidc"
    token_id: str | None = None  # the token's jti, when it has one
    issuer: str | None = None  # who vouched: "wardgate" or the IdP's issuer URL
    idp_subject: str | None = None  # the IdP's stable ``sub`` (a user name can be reassigned; sub cannot)
    expires_at: float | None = None  # epoch seconds: when the presented token expires


class AuthFailure(Exception):
    """Authentication failed. ``reason`` is safe to show and to audit: it never contains the secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Authenticator(Protocol):
    """Something that can turn a presented credential into an identity.

    ``accepts`` is a cheap look at the credential (e.g. its issuer) so several authenticators can sit side by
    side; ``verify`` does the real work and raises ``AuthFailure``.
    """

    def accepts(self, credential: str) -> bool: ...

    def verify(self, credential: str) -> Identity: ...
