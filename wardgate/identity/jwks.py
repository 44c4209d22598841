"""An identity provider's signing keys, fetched from its discovery document and cached.

Three forces shape this cache. Keys rotate: a token signed by a key the cache has never seen makes it re-fetch
at once, but at most once per ``jwks_min_refresh`` so that a stream of forged kids cannot turn the gateway into a
request amplifier against the IdP. IdPs have outages: keys already fetched stay usable for ``jwks_max_stale``
after their last successful fetch, and not a second longer (then tokens are refused: fail closed). And keys are
retired: a refresh replaces the whole set, so a key the IdP stopped publishing stops verifying tokens.

Blocking by design: verification runs in the executor threads the pipeline already uses for authentication; one
lock makes concurrent logins during a refresh wait for that refresh instead of starting their own.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from ..config import OIDCConfig
from .model import AuthFailure

log = logging.getLogger("wardgate.identity")

MAX_DOCUMENT_BYTES = 1 << 20  # a discovery document or JWKS is a few KB; refuse to buffer an endless answer
FETCH_TIMEOUT = 5.0
# Key types that sign asymmetrically. A JWKS may carry other keys (oct, or keys for encryption); they are never
# used to verify a token, whatever the token's header says.
SIGNING_KTY = ("RSA", "EC", "OKP")


class ProviderError(Exception):
    """The provider's documents could not be fetched or are not what an OIDC provider publishes."""


def http_client(ca_file: str | None) -> httpx.Client:
    """A client that trusts the system store, or exactly the configured CA file, and never follows redirects
    (a discovery document must be served at its own address)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    return httpx.Client(verify=verify, timeout=FETCH_TIMEOUT, follow_redirects=False)


def fetch_json(client: httpx.Client, url: str) -> dict[str, Any]:
    """GET a JSON object, bounded in size; every failure is a ProviderError naming the URL."""
    try:
        with client.stream("GET", url, headers={"Accept": "application/json"}) as resp:
            if resp.status_code != 200:
                raise ProviderError(f"{url} answered HTTP {resp.status_code}")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise ProviderError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise ProviderError(f"cannot fetch {url}: {exc.__class__.__name__}: {exc}") from None
    try:
        doc = json.loads(body)
    except ValueError:
        raise ProviderError(f"{url} did not answer JSON") from None
    if not isinstance(doc, dict):
        raise ProviderError(f"{url} did not answer a JSON object")
    return doc


def secure_url(url: object, what: str) -> str:
    """Endpoints the gateway calls must be https, like the issuer (http only on a loopback host)."""
    if not isinstance(url, str):
        raise ProviderError(f"the discovery document has no {what}")
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ProviderError(f"{what} {url} is not an https URL")
    return url


def discover(client: httpx.Client, issuer: str) -> dict[str, Any]:
    """The discovery document, checked to be the issuer's own (OpenID Connect Discovery 1.0, section 4.3)."""
    doc = fetch_json(client, issuer.rstrip("/") + "/.well-known/openid-configuration")
    if doc.get("issuer") != issuer:
        raise ProviderError(f"the discovery document names the issuer {doc.get('issuer')!r}, not {issuer!r}")
    return doc


@dataclass(frozen=True, slots=True)
class Key:
    jwk: jwt.PyJWK
    alg: str | None  # the algorithm the JWKS pins the key to, if it does


@dataclass(frozen=True, slots=True)
class KeySet:
    keys: dict[str, Key]  # by kid ("" for the one key of a JWKS without kids)
    fetched_at: float  # monotonic


def parse_jwks(doc: dict[str, Any]) -> dict[str, Key]:
    """The JWKS's signing keys by kid; keys that cannot sign asymmetrically are left out, not trusted."""
    raw = doc.get("keys")
    if not isinstance(raw, list):
        raise ProviderError("the JWKS has no keys list")
    keys: dict[str, Key] = {}
    for entry in raw:
        if not isinstance(entry, dict) or entry.get("kty") not in SIGNING_KTY or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            log.warning("ignoring a key of the JWKS (kid %r): %s", entry.get("kid"), exc)
            continue
        kid = entry.get("kid")
        alg = entry.get("alg")
        keys[kid if isinstance(kid, str) else ""] = Key(key, alg if isinstance(alg, str) else None)
    return keys


class ProviderKeys:
    """The cached keys of one issuer. ``key`` is the only entry point; it refreshes when it must."""

    def __init__(self, cfg: OIDCConfig, clock: Callable[[], float] = time.monotonic,
                 client: httpx.Client | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.client = client or http_client(str(cfg.ca_file) if cfg.ca_file else None)
        self._lock = threading.Lock()
        self._set: KeySet | None = None
        self._last_attempt: float | None = None
        self.fetches = 0  # successful refreshes, for tests and logs

    def _refresh(self) -> None:
        """Replace the key set from the IdP (caller holds the lock). Raises ProviderError."""
        self._last_attempt = self.clock()
        meta = discover(self.client, self.cfg.issuer)
        keys = parse_jwks(fetch_json(self.client, secure_url(meta.get("jwks_uri"), "jwks_uri")))
        if not keys:
            raise ProviderError("the JWKS holds no signing key")
        old = set(self._set.keys) if self._set else set()
        self._set = KeySet(keys, self.clock())
        self.fetches += 1
        if old and old != set(keys):
            log.info("signing keys of %s changed: added %s, retired %s", self.cfg.issuer,
                     sorted(set(keys) - old) or "none", sorted(old - set(keys)) or "none")

    def _may_retry(self) -> bool:
        return self._last_attempt is None or self.clock() - self._last_attempt >= self.cfg.jwks_min_refresh

    def _try_refresh(self, why: str) -> None:
        try:
            self._refresh()
        except ProviderError as exc:
            log.warning("cannot refresh the signing keys of %s (%s): %s", self.cfg.issuer, why, exc)
            if self._set is None:
                raise AuthFailure(f"the identity provider {self.cfg.issuer} cannot be reached to fetch its "
                                  f"signing keys; tokens it issued cannot be verified now") from None

    def key(self, kid: str | None) -> Key:
        """The key that should have signed a token with this kid. Raises AuthFailure."""
        with self._lock:
            if self._set is None:
                self._try_refresh("first use")
            elif self.clock() - self._set.fetched_at > self.cfg.jwks_max_age and self._may_retry():
                self._try_refresh("keys too old")
            assert self._set is not None
            if self.clock() - self._set.fetched_at > self.cfg.jwks_max_stale:
                raise AuthFailure(f"the signing keys of {self.cfg.issuer} could not be refreshed for longer than "
                                  f"jwks_max_stale; tokens are refused until the identity provider is reachable")
            if kid is None:
                if len(self._set.keys) == 1:
                    return next(iter(self._set.keys.values()))
                raise AuthFailure("the token names no signing key (kid) and the provider has several")
            if kid not in self._set.keys and self._may_retry():
                self._try_refresh(f"unknown kid {kid[:64]!r}")
            found = self._set.keys.get(kid)
            if found is None:
                raise AuthFailure(f"the token is signed with a key {self.cfg.issuer} does not publish "
                                  f"(kid {kid[:64]!r})")
            return found
