"""Who is connecting: verified identities from gateway tokens (and, later, OIDC providers)."""

from .model import AuthFailure, Identity

__all__ = ["AuthFailure", "Identity"]
