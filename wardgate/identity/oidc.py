"""Tokens from the company's OpenID Connect provider: verified offline against its published keys.

Every check a relying party owes is here, in the order that keeps reasons exact and work small: the header's
algorithm (only the configured asymmetric ones, so ``none`` and an HS256 token "signed" with the public key are
refused before any key is touched), the key by kid, then signature, issuer, audience and times (PyJWT), then the
claims that make an identity: the user name, the groups (mapped to gateway groups), and the allowed groups.
"""

from __future__ import annotations

import logging
from typing import Any

import jwt

from ..config import OIDCConfig
from .jwks import ProviderKeys
from .model import AuthFailure, Identity

log = logging.getLogger("wardgate.identity")

MAX_NAME = 256
# Token kinds an IdP marks in a claim, that are no proof of identity to a resource: refresh tokens (some IdPs make
# them JWTs signed like access tokens, with the same audience) and logout tokens.
NOT_CREDENTIALS = {"token_use": {"refresh"}, "typ": {"Refresh", "Offline", "Logout"}}


def unverified_claims(credential: str) -> dict[str, Any] | None:
    """The payload of something shaped like a JWT, unverified: only to route it to the right verifier."""
    try:
        claims = jwt.decode(credential, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def claim(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (``realm_access.roles``); None when any step is missing. A claim whose own name
    has dots (``https://example.com/groups``) is found too: the whole path is tried as one name first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def clean_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AuthFailure(f"the token has no {what}")
    if len(value) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise AuthFailure(f"the token's {what} is not a usable name (control characters, or over {MAX_NAME})")
    return value


class OIDCAuthenticator:
    """Verifies the tokens of one issuer. ``accepts`` routes by the unverified ``iss``; ``verify`` proves it."""

    method = "oidc"

    def __init__(self, cfg: OIDCConfig, keys: ProviderKeys | None = None) -> None:
        self.cfg = cfg
        self.keys = keys or ProviderKeys(cfg)

    def accepts(self, credential: str) -> bool:
        claims = unverified_claims(credential)
        return claims is not None and claims.get("iss") == self.cfg.issuer

    def verify(self, credential: str) -> Identity:
        cfg = self.cfg
        try:
            header = jwt.get_unverified_header(credential)
        except jwt.PyJWTError:
            raise AuthFailure("the token is not a well-formed JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise AuthFailure("the token is unsigned (alg none); only signed tokens are accepted")
        if alg.upper().startswith("HS"):
            raise AuthFailure(f"the token is signed with {alg}, a shared-secret algorithm; only the provider's "
                              f"asymmetric signatures are accepted")
        if alg not in cfg.algorithms:
            raise AuthFailure(f"the token's algorithm {alg[:16]} is not accepted (accepted: "
                              f"{', '.join(cfg.algorithms)})")
        kid = header.get("kid")
        key = self.keys.key(kid if isinstance(kid, str) else None)
        if key.alg is not None and key.alg != alg:
            raise AuthFailure(f"the token says {alg} but its key is published for {key.alg[:16]}")
        try:
            claims = jwt.decode(
                credential,
                key.jwk.key,
                algorithms=[alg],
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailure("the token has expired; log in again (wardgate login)") from None
        except jwt.ImmatureSignatureError:
            raise AuthFailure("the token is not valid yet (its nbf or iat is in the future; check clocks)") from None
        except jwt.InvalidAudienceError:
            raise AuthFailure(f"the token is not meant for this gateway (its audience is not one of: "
                              f"{', '.join(cfg.audience)})") from None
        except jwt.InvalidIssuerError:
            raise AuthFailure("the token's issuer does not match") from None
        except jwt.InvalidSignatureError:
            raise AuthFailure("the token's signature is invalid (altered, or not signed by the provider)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthFailure(f"the token lacks the {exc.claim} claim") from None
        except jwt.InvalidKeyError:
            raise AuthFailure(f"the token's algorithm {alg} does not fit its key") from None
        except jwt.PyJWTError as exc:
            raise AuthFailure(f"the token is invalid: {exc}") from None
        for name, kinds in NOT_CREDENTIALS.items():
            if claims.get(name) in kinds:
                raise AuthFailure(f"a {claims[name]} token is not a login credential; use the access or ID token")
        subject = clean_name(claims.get("sub"), "subject (sub)")
        username = clean_name(claim(claims, cfg.username_claim), f"user name claim ({cfg.username_claim})")
        groups = self.groups(claims)
        if cfg.allowed_groups and not set(groups) & set(cfg.allowed_groups):
            raise AuthFailure(f'user "{username}" is in none of the groups allowed to use this gateway through '
                              f"{cfg.issuer} ({', '.join(cfg.allowed_groups)})")
        jti = claims.get("jti")
        return Identity(username, groups, self.method, jti[:64] if isinstance(jti, str) else None,
                        cfg.issuer, subject, float(claims["exp"]))

    def groups(self, claims: dict[str, Any]) -> tuple[str, ...]:
        """The gateway groups of a verified token: the groups claim (absent: none), mapped."""
        raw = claim(claims, self.cfg.groups_claim)
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(g, str) for g in raw):
            raise AuthFailure(f"the token's groups claim ({self.cfg.groups_claim}) is not a list of names")
        out: dict[str, None] = {}
        for g in raw:
            mapped = self.cfg.group_map.get(g)
            if mapped is not None:
                out.update(dict.fromkeys(mapped))
            elif self.cfg.unmapped_groups == "keep":
                out[g] = None
        return tuple(out)
