"""The identity vocabulary shared by every authenticator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified person or agent. ``method`` says which authenticator vouched for them."""

    subject: str
    groups: tuple[str, ...]
    method: str
    token_id: str | None = None


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
