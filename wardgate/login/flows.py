"""OAuth flows of a public client (no secret can be kept on a laptop): device authorization (RFC 8628), the
authorization code flow with PKCE (RFC 7636) and a loopback redirect (RFC 8252), refresh, and revocation.

The gateway tells the CLI which provider and client to use (``GET /api/v1/login``); the CLI talks to the provider
directly, so the user's password never passes through the gateway or the CLI, only the browser.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt

from ..identity.jwks import ProviderError, discover, http_client, secure_url
from .profile import Profile, ProfileError, credentials_lock, load, save

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_MARGIN = 60.0  # refresh a credential that expires within this many seconds


class LoginError(Exception):
    """A flow failed; the message is the provider's reason or ours, never a token."""


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    scopes: list[str]
    audience: list[str]
    metadata: dict[str, Any]
    ca_file: str | None

    def client(self) -> httpx.Client:
        return http_client(self.ca_file)

    def endpoint(self, name: str) -> str:
        try:
            return secure_url(self.metadata.get(name), name)
        except ProviderError as exc:
            raise LoginError(f"{self.issuer}: {exc}") from None


def provider(issuer: str, client_id: str, scopes: list[str], audience: list[str], ca_file: str | None) -> Provider:
    with http_client(ca_file) as client:
        try:
            meta = discover(client, issuer)
        except ProviderError as exc:
            raise LoginError(str(exc)) from None
    return Provider(issuer, client_id, scopes, audience, meta, ca_file)


def _token_call(client: httpx.Client, url: str, data: dict[str, str]) -> dict[str, Any]:
    try:
        resp = client.post(url, data=data, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise LoginError(f"cannot reach {url}: {exc.__class__.__name__}") from None
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if resp.status_code != 200:
        err = body.get("error") or f"HTTP {resp.status_code}"
        desc = body.get("error_description")
        raise LoginError(f"{err}: {desc}" if desc else str(err))
    if not isinstance(body.get("access_token"), str):
        raise LoginError(f"{url} answered no access_token")
    return body


def device_flow(p: Provider, say: Callable[[str], None], sleep: Callable[[float], None] = time.sleep
                ) -> dict[str, Any]:
    """Print a code and URL, then poll until the user approves in a browser (anywhere), denies, or it expires."""
    with p.client() as client:
        try:
            resp = client.post(p.endpoint("device_authorization_endpoint"),
                               data={"client_id": p.client_id, "scope": " ".join(p.scopes)})
            grant = resp.json()
        except (httpx.HTTPError, ValueError):
            raise LoginError("the provider's device authorization endpoint did not answer") from None
        if resp.status_code != 200 or not isinstance(grant, dict) or "device_code" not in grant:
            reason = grant.get("error_description") or grant.get("error") if isinstance(grant, dict) else None
            raise LoginError(f"the provider refused the device authorization: {reason or resp.status_code}")
        url = grant.get("verification_uri_complete") or grant.get("verification_uri")
        say(f"To log in, open {grant.get('verification_uri')} and enter the code {grant.get('user_code')}")
        if grant.get("verification_uri_complete"):
            say(f"  (or open {url})")
        interval = float(grant.get("interval") or 5)
        deadline = time.monotonic() + float(grant.get("expires_in") or 600)
        while time.monotonic() < deadline:
            sleep(interval)
            try:
                return _token_call(client, p.endpoint("token_endpoint"), {
                    "grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": p.client_id})
            except LoginError as exc:
                code = str(exc).split(":", 1)[0]
                if code == "authorization_pending":
                    continue
                if code == "slow_down":
                    interval += 5
                    continue
                if code == "access_denied":
                    raise LoginError("the login was denied in the browser") from None
                if code == "expired_token":
                    break
                raise
    raise LoginError("the code expired before the login was approved; run wardgate login again")


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class _Inbox:
    """What the browser brought back to the loopback listener."""

    def __init__(self) -> None:
        self.result: dict[str, str] = {}
        self.arrived = threading.Event()


def _callback_handler(inbox: _Inbox) -> type[BaseHTTPRequestHandler]:
    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/callback" or inbox.arrived.is_set():
                self.send_error(404)
                return
            inbox.result = {k: v[0] for k, v in parse_qs(parts.query).items()}
            body = b"wardgate: the login failed; see the terminal.\n" if "error" in inbox.result else \
                b"wardgate: you are logged in; you can close this window.\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            inbox.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Callback


def browser_flow(p: Provider, say: Callable[[str], None], open_url: Callable[[str], bool],
                 timeout: float = 300.0) -> dict[str, Any]:
    """The code flow with PKCE: the browser comes back to a one-shot listener on 127.0.0.1 (any free port)."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    inbox = _Inbox()
    server = HTTPServer(("127.0.0.1", 0), _callback_handler(inbox))
    redirect = f"http://127.0.0.1:{server.server_address[1]}/callback"
    url = p.endpoint("authorization_endpoint") + "?" + urlencode({
        "response_type": "code", "client_id": p.client_id, "redirect_uri": redirect, "scope": " ".join(p.scopes),
        "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        say(f"Opening the browser to log in; if it does not open, visit:\n{url}")
        open_url(url)
        if not inbox.arrived.wait(timeout):
            raise LoginError(f"no answer from the browser within {timeout:g}s")
    finally:
        server.shutdown()
        server.server_close()
    got = inbox.result
    if got.get("state") != state:
        raise LoginError("the browser came back with another login's state; run wardgate login again")
    if "error" in got:
        raise LoginError(f"{got['error']}: {got.get('error_description', '')}".rstrip(": "))
    with p.client() as client:
        return _token_call(client, p.endpoint("token_endpoint"), {
            "grant_type": "authorization_code", "code": got.get("code", ""), "redirect_uri": redirect,
            "client_id": p.client_id, "code_verifier": verifier})


def _expiry(token: str, fallback: float) -> float:
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return fallback
    return float(exp) if isinstance(exp, int | float) else fallback


def choose_credential(tokens: dict[str, Any], audience: list[str]) -> str:
    """The access token when the gateway can verify it (a JWT for one of its audiences); else the ID token
    (Google's access tokens, for one, are opaque)."""
    try:
        aud = jwt.decode(tokens["access_token"], options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError:
        aud = None
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if set(auds) & set(audience) or not tokens.get("id_token"):
        return "access_token"
    return "id_token"


def apply_tokens(profile: Profile, tokens: dict[str, Any]) -> None:
    """Keep a token response in the profile (a refresh may rotate the refresh token, or keep it)."""
    profile.access_token = tokens["access_token"]
    if tokens.get("id_token"):
        profile.id_token = tokens["id_token"]
    if tokens.get("refresh_token"):
        profile.refresh_token = tokens["refresh_token"]
    fallback = time.time() + float(tokens.get("expires_in") or 300)
    profile.expires_at = _expiry(profile.token(), fallback)


def refresh(profile: Profile) -> None:
    if not profile.refresh_token:
        raise ProfileError(f"your login to {profile.gateway} has expired and holds no refresh token: "
                           f"run wardgate login again")
    data = {"grant_type": "refresh_token", "refresh_token": profile.refresh_token, "client_id": profile.client_id}
    if profile.credential == "id_token":  # ask for a new ID token too: it is the credential in use
        data["scope"] = " ".join(profile.scopes)
    with http_client(profile.idp_ca_file) as client:
        try:
            tokens = _token_call(client, profile.token_endpoint, data)
        except LoginError as exc:
            raise ProfileError(f"your login to {profile.gateway} could not be refreshed ({exc}): "
                               f"run wardgate login again") from None
    apply_tokens(profile, tokens)
    save(profile, make_default=False)


_refresh_lock = threading.Lock()


def fresh_token(profile: Profile, margin: float = REFRESH_MARGIN) -> str:
    """The credential, refreshed first when it expires within ``margin`` seconds. The credentials file is the
    truth: ``profile`` is brought up to date from it under the user's lock before use, so a refresh by another
    wardgate process is picked up, not undone. Thread-safe (the connect listener asks from several connections at
    once); raises ProfileError when the user must log in again."""
    with _refresh_lock, credentials_lock():
        disk = load(profile.gateway)
        if profile.user and disk.user != profile.user:
            raise ProfileError(f"the login to {profile.gateway} is now for {disk.user or 'another user'}, "
                               f"not {profile.user}: restart the command")
        for name, value in asdict(disk).items():
            setattr(profile, name, value)
        if profile.expires_in() < margin:
            refresh(profile)
        return profile.token()


def revoke(profile: Profile) -> str:
    """Revoke the refresh token at the provider, when it offers revocation (RFC 7009). Returns what happened."""
    if not profile.refresh_token or not profile.revocation_endpoint:
        return "the provider offers no revocation; the tokens expire on their own"
    with http_client(profile.idp_ca_file) as client:
        try:
            resp = client.post(profile.revocation_endpoint, data={
                "token": profile.refresh_token, "token_type_hint": "refresh_token", "client_id": profile.client_id})
        except httpx.HTTPError as exc:
            return f"could not reach the provider to revoke the refresh token ({exc.__class__.__name__})"
    return "refresh token revoked" if resp.status_code == 200 else f"revocation answered HTTP {resp.status_code}"
