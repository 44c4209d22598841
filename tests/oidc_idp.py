"""A real OpenID Connect provider for the identity tests: nanoidp 3.4.0 in a subprocess, over real TLS.

Why a real provider: the gateway's OIDC validator has to be tested against tokens, discovery documents, JWKS and
browser/device flows that a provider actually produces, not against fixtures shaped by what we believe a provider
does. nanoidp is small, pure Python, runs from the project's venv and implements the flows the CLI uses (device
authorization, authorization code + PKCE with a loopback redirect, refresh) plus the password grant as a fast path.

How it is run: `running_idp()` writes settings.yaml/users.yaml into a temporary directory, makes a throwaway CA and a
server certificate for 127.0.0.1 (nothing is committed), and starts this very file as a script (`serve`), which builds
nanoidp's own Flask app (`nanoidp.app.create_app`) and serves it with an `ssl_context` - nanoidp's CLI has no TLS
option, and its `run_app` calls `app.run()` without one. The issuer is `https://127.0.0.1:<port>` (http with
tls=False), set explicitly (`oauth.issuer`, `issuer_from_request: false`), so discovery's `issuer`, the tokens' `iss`
and the URL we fetch are one string.

What nanoidp 3.4.0 emits (read from its source, checked by tests/integration/test_oidc_idp_harness.py):

- Signing: RS256 only (RSA 2048; the algorithm is hard-coded in nanoidp.services.crypto, `jwt.algorithm` in
  settings.yaml changes nothing). JWT header `{"alg": "RS256", "kid": <32 hex chars>, "typ": "JWT"}`. The JWKS
  (`/.well-known/jwks.json`) lists the active key first, then the retired ones it keeps; every entry has `kid`,
  `kty` RSA, `use` sig, `alg` RS256.
- Access token: a JWT. Claims: `jti`, `iss`, `sub` (= the username), `aud` (= oauth.audience, "wardgate", a plain
  string), `iat`, `nbf` (= iat), `exp`, `scope`, `client_id`, `token_use` "access", `tenant` "default", and from the
  user: `roles` and `groups` (each only when non-empty: a user without groups has NO `groups` claim, not an empty
  list), `authorities` (ROLE_<ROLE> / GROUP_<GROUP>, upper-cased), `attributes` (the user's attributes dict, only when
  non-empty). No `email`, no `preferred_username`: the username is `sub`.
- Nested claims: `attributes` is the one nested claim tied to the user, so IdPUser(attributes={"realm_access":
  {"roles": [...]}}) gives the path `attributes.realm_access.roles`. A top-level nested claim such as
  `realm_access.roles` can only come from the token request's `extra` parameter (JSON object; nanoidp refuses names
  like sub/aud/groups/roles/email there), which password_tokens(extra_claims=...) passes through.
- ID token: `jti`, `iss`, `sub`, `aud` = the client_id ("wardgate-cli", a string), `iat`, `nbf`, `exp` (same lifetime
  as the access token), `token_use` "id", `auth_time`, `at_hash`, `nonce` when one was sent (no `amr`: nanoidp sets it
  only with its TOTP second factor on; no `azp`: only with more than one audience). No groups or email, unless the
  authorization request names them in the OIDC `claims` parameter (authorize_url(claims={"id_token": {"groups":
  None}})), which only the authorization-code flow honours.
- Refresh token: ALSO a JWT, signed with the same key, with `aud` "wardgate" too, `token_use` "refresh" and
  `token_type` "refresh". Signature, iss and aud all pass for it, so a validator must tell it from an access token
  (by `token_use`) or it accepts a refresh token as a bearer token.
- The client is public (token_endpoint_auth_method none): PKCE S256 is mandatory on /authorize, refresh-token rotation
  is always on (each refresh returns a new refresh token; reusing a spent one revokes the family), and the password,
  device-code, authorization-code and refresh grants all work with the client_id alone.
- Redirect URIs: registered as http://127.0.0.1/callback and http://[::1]/callback; nanoidp matches a registered
  loopback URI on any port (RFC 8252 section 7.3), so http://127.0.0.1:<any>/callback works. `localhost` gets exact
  matching (by design, RFC 8252 section 8.3): pass redirect_uris= to register other URIs.
- Lifetimes: nanoidp counts token lifetimes in whole minutes (settings and the /token `exp` parameter alike). For a
  lifetime that is not a whole number of minutes (e.g. 5 s, to test refresh) the serve mode below wraps
  `TokenService.create_token` so that the access and ID tokens get `exp = iat + access_token_ttl` and the response
  `expires_in = access_token_ttl`; a whole number of minutes runs nanoidp unchanged.
- Key rotation: nanoidp's keys directory is shared state with a published marker (kid.txt) that every request of the
  server checks (nanoidp.services.key_directory, "#420"). rotate_key(keep_old=True) is nanoidp's own
  POST /api/keys/rotate (the old key stays in the JWKS, up to jwt.max_previous_keys); rotate_key(keep_old=False)
  publishes a new key with no previous keys through that module's locked rotation, as a second nanoidp process would,
  and the running server adopts it on its next request. No restart either way; same port, same issuer.
- Cost: a start takes about 0.5 s. A token response takes 60-90 ms, because nanoidp hands PyJWT the key as PEM bytes
  and the key is loaded (and checked) again for every JWT, about 30 ms each. Leave openid out of the scope when a
  test needs no ID token, and share one provider across a module where the tests allow it.
- Also there: /userinfo (email, email_verified, preferred_username, groups, roles for a bearer access token), and
  /api/keys/info. The /api/* management API has no authentication (nanoidp's design for local use); it listens on
  127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import html.parser
import ipaddress
import json
import math
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_CLIENT_ID = "wardgate-cli"
DEFAULT_AUDIENCE = "wardgate"
# Registered loopback redirect URIs: nanoidp lets any port through on these (RFC 8252 section 7.3).
LOOPBACK_REDIRECT_URIS = ("http://127.0.0.1/callback", "http://[::1]/callback")
DEFAULT_SCOPE = "openid profile email offline_access"
# How many retired keys the JWKS keeps after rotate_key(keep_old=True): enough for any test to rotate a few times.
MAX_PREVIOUS_KEYS = 5
START_TIMEOUT = 30.0
HOST = "127.0.0.1"


class IdPError(RuntimeError):
    """The provider answered something other than what the flow expects; carries the status and body to debug it."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        # A JSON error body says what went wrong; an HTML page would bury the message (kept in .body regardless).
        detail = "" if body.lstrip().startswith("<") else f": {body[:2000]}"
        super().__init__(f"{message} (status {status}){detail}" if status is not None else message)
        self.status = status
        self.body = body


@dataclass
class IdPUser:
    """One user of the provider (users.yaml). `groups` becomes the tokens' `groups` claim (absent when empty),
    `roles` the `roles` claim, and `attributes` the nested `attributes` claim (the one user-bound nested claim
    nanoidp emits, e.g. {"realm_access": {"roles": [...]}} for a claim path test)."""

    username: str
    password: str
    email: str
    groups: list[str]
    roles: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    """tests/ports.py's, imported here rather than at the top: this file also runs as the provider's own process
    (`serve`), where the tests package is not importable."""
    from tests.ports import free_port as shared

    return shared()


def pkce_pair() -> tuple[str, str]:
    """A PKCE (verifier, S256 challenge) pair, as a native client makes one (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


# --------------------------------------------------------------------------------------------------------------------
# Throwaway TLS material
# --------------------------------------------------------------------------------------------------------------------


def make_tls_material(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, ::1 and localhost, written to `directory` as (ca.pem,
    server.pem, server.key). Made per test run so no key is ever committed; the CA has the extensions strict
    verifiers (Python 3.13's VERIFY_X509_STRICT, Go, rustls) insist on, so it works beyond this venv's client."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wardgate test IdP CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
                x509.DNSName("localhost"),
            ]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


# --------------------------------------------------------------------------------------------------------------------
# HTML forms, as a browser reads them
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class _Form:
    method: str
    action: str | None
    fields: dict[str, str] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)


class _FormParser(html.parser.HTMLParser):
    """The forms of a page with their inputs' names and initial values, and the text of error alerts: enough to act
    as the browser on nanoidp's login pages without guessing field names."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.alerts: list[str] = []
        self._form: _Form | None = None
        self._alert_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = _Form(method=a.get("method", "GET").upper(), action=a.get("action"))
            self.forms.append(self._form)
        elif tag in ("input", "button", "textarea", "select") and self._form is not None and a.get("name"):
            self._form.names.add(a["name"])
            if tag == "input" and a.get("type", "text") in ("hidden", "text") and a.get("value"):
                self._form.fields[a["name"]] = a["value"]
        if tag == "div" and "alert-danger" in a.get("class", "").split():
            self._alert_depth = 1
            self.alerts.append("")
        elif tag == "div" and self._alert_depth:
            self._alert_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "div" and self._alert_depth:
            self._alert_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._alert_depth:
            self.alerts[-1] += data


def _parse_page(text: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(text)
    return parser


def _login_form(page: _FormParser, url: str, response: httpx.Response) -> _Form:
    for form in page.forms:
        if form.method == "POST" and {"username", "password"} <= form.names:
            return form
    alerts = "; ".join(" ".join(alert.split()) for alert in page.alerts)
    raise IdPError(f"no username/password form at {url}" + (f" ({alerts})" if alerts else ""),
                   response.status_code, response.text)


# --------------------------------------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------------------------------------


class NanoIdP:
    """One nanoidp process with its configuration directory, keys and certificates under `tmp`.

    Built by `running_idp()`; the attributes are what a test configures the gateway with (issuer, ca_file,
    client_id, audience), the methods drive the provider's real endpoints the way a client or a browser would."""

    def __init__(
        self,
        tmp: Path,
        users: Sequence[IdPUser],
        *,
        access_token_ttl: int = 300,
        tls: bool = True,
        client_id: str = DEFAULT_CLIENT_ID,
        audience: str = DEFAULT_AUDIENCE,
        redirect_uris: Sequence[str] = LOOPBACK_REDIRECT_URIS,
        port: int | None = None,
    ) -> None:
        if not 1 <= access_token_ttl <= 1440 * 60:
            raise ValueError("access_token_ttl must be between 1 second and 1 day (nanoidp's bound)")
        self.tmp = tmp
        self.users = list(users)
        self.access_token_ttl = access_token_ttl
        self.client_id = client_id
        self.audience = audience
        self.redirect_uris = list(redirect_uris)
        self.port = port or free_port()
        self.config_dir = tmp / "nanoidp"
        self.keys_dir = self.config_dir / "keys"
        self.log_file = tmp / "nanoidp.log"
        self.ca_file: Path | None = None
        self._tls_pair: tuple[Path, Path] | None = None
        if tls:
            self.ca_file, cert, key = make_tls_material(tmp / "nanoidp-tls")
            self._tls_pair = (cert, key)
        self.issuer = f"{'https' if tls else 'http'}://{HOST}:{self.port}"
        self.metadata: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    # -- configuration ------------------------------------------------------------------------------------------------

    def _write_config(self) -> None:
        """settings.yaml and users.yaml in nanoidp's schema (`python -m nanoidp config-schema`). Strict validation, so
        a key nanoidp does not know fails the start instead of being ignored."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "config_version": 1,
            "config_validation": "strict",
            "security_profile": "dev",  # oauth21 would drop the password grant, the fast path of most tests
            "server": {"host": HOST, "port": self.port},
            "oauth": {
                "issuer": self.issuer,
                "issuer_from_request": False,
                "audience": self.audience,
                "token_expiry_minutes": max(1, math.ceil(self.access_token_ttl / 60)),
                "refresh_token_expiry_minutes": 60,
                "clients": [{
                    "client_id": self.client_id,
                    "token_endpoint_auth_method": "none",
                    "description": "wardgate CLI (public client: device flow, auth code + PKCE, refresh)",
                    "redirect_uris": self.redirect_uris,
                }],
            },
            # 1 s so that the device-flow tests do not sit out nanoidp's 5 s default between polls
            "device_flow": {"code_expiry_seconds": 600, "polling_interval": 1},
            "jwt": {"keys_dir": str(self.keys_dir), "max_previous_keys": MAX_PREVIOUS_KEYS},
            "session": {"secret_key": secrets.token_hex(32)},
            "logging": {"level": "INFO"},
        }
        users: dict[str, Any] = {}
        for user in self.users:
            entry: dict[str, Any] = {"password": user.password, "email": user.email, "groups": list(user.groups),
                                     "roles": list(user.roles)}
            if user.attributes:
                entry["attributes"] = user.attributes
            users[user.username] = entry
        (self.config_dir / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        (self.config_dir / "users.yaml").write_text(yaml.safe_dump({"config_version": 1, "users": users},
                                                                   sort_keys=False))

    # -- process ------------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until its discovery document answers; on failure raise with its log."""
        if self._proc is not None:
            raise RuntimeError("nanoidp is already running")
        cmd = [sys.executable, "-P", str(Path(__file__).resolve()), "serve", "--config", str(self.config_dir),
               "--port", str(self.port), "--ttl-seconds", str(self.access_token_ttl)]
        if self._tls_pair is not None:
            cmd += ["--tls-cert", str(self._tls_pair[0]), "--tls-key", str(self._tls_pair[1])]
        # nanoidp reads NANOIDP_* (bootstrap hooks, plugins, management secret) from the environment: none of the
        # caller's may leak into the test provider.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NANOIDP_", "MOCK_IDP_"))}
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_file.open("ab") as log:
            log.write(f"--- starting: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=self.config_dir, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        url = f"{self.issuer}/.well-known/openid-configuration"
        last_error = ""
        with self.client(timeout=2.0) as http:
            while True:
                if self._proc.poll() is not None:
                    code = self._proc.returncode
                    self._proc = None
                    raise RuntimeError(f"nanoidp exited with {code} while starting:\n{self.log_text()}")
                try:
                    response = http.get(url)
                    if response.status_code == 200:
                        self.metadata = response.json()
                        break
                    last_error = f"HTTP {response.status_code}"
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nanoidp did not answer {url} within {START_TIMEOUT:.0f} s "
                                       f"({last_error}):\n{self.log_text()}")
                time.sleep(0.05)
        if self.metadata.get("issuer") != self.issuer:
            self.stop()
            raise RuntimeError(f"nanoidp advertises issuer {self.metadata.get('issuer')!r}, not {self.issuer!r}")

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not gone within 5 s. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same port with the same configuration, keys and issuer (e.g. to test a
        gateway that outlives its provider). Runtime state (refresh-token families, pending codes) is lost."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # -- plain HTTP ---------------------------------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client that trusts the provider's CA (and only the system's otherwise); no redirects followed."""
        kwargs.setdefault("verify", ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True)
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(**kwargs)

    def _post(self, url: str, data: dict[str, str]) -> httpx.Response:
        with self.client() as http:
            return http.post(url, data=data)

    def _endpoint(self, name: str) -> str:
        return str(self.metadata[name])

    def discovery(self) -> dict[str, Any]:
        """The discovery document, fetched now."""
        with self.client() as http:
            response = http.get(f"{self.issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def jwks(self) -> dict[str, Any]:
        """The JWKS, fetched now (active key first, then the retired keys kept)."""
        with self.client() as http:
            response = http.get(self._endpoint("jwks_uri"))
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    # -- keys ---------------------------------------------------------------------------------------------------------

    def active_kid(self) -> str:
        """The kid new tokens are signed with, as the running server reports it."""
        with self.client() as http:
            response = http.get(f"{self.issuer}/api/keys/info")
        response.raise_for_status()
        return str(response.json()["active_kid"])

    def public_key_pem(self) -> bytes:
        """The active signing key's public half (for "HS256 signed with the public key" style forgeries)."""
        return (self.keys_dir / "rsa_public.pem").read_bytes()

    def private_key_pem(self) -> bytes:
        """The active signing key itself (for tokens with the right kid and signature but claims the provider would
        never issue, e.g. a wrong aud or a missing exp)."""
        return (self.keys_dir / "rsa_private.pem").read_bytes()

    def rotate_key(self, keep_old: bool) -> str:
        """Make the provider sign new tokens with a new key (new kid), and return that kid.

        keep_old=True: nanoidp's own rotation (POST /api/keys/rotate); the old public key stays in the JWKS.
        keep_old=False: a new key published with no previous keys through nanoidp's keys-directory protocol, as a
        second nanoidp process would rotate; the running server adopts it on its next request, so the old kid is gone
        from the JWKS and tokens signed with it stop verifying, at nanoidp too. No restart: same port, same issuer."""
        if keep_old:
            with self.client() as http:
                response = http.post(f"{self.issuer}/api/keys/rotate")
            if response.status_code != 200:
                raise IdPError("key rotation refused", response.status_code, response.text)
            new_kid = str(response.json()["new_kid"])
        else:
            new_kid = _rotate_without_previous(self.keys_dir)
        deadline = time.monotonic() + 10
        while self.active_kid() != new_kid:
            if time.monotonic() > deadline:
                raise IdPError(f"nanoidp did not adopt the rotated key {new_kid}:\n{self.log_text()}")
            time.sleep(0.05)
        return new_kid

    # -- grants -------------------------------------------------------------------------------------------------------

    def _token_request(self, data: dict[str, str]) -> dict[str, Any]:
        response = self._post(self._endpoint("token_endpoint"), {"client_id": self.client_id, **data})
        if response.status_code != 200:
            raise IdPError(f"token request ({data.get('grant_type')}) refused", response.status_code, response.text)
        result: dict[str, Any] = response.json()
        return result

    def password_tokens(
        self, username: str, password: str, scope: str = DEFAULT_SCOPE, *, extra_claims: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """access_token, id_token (with openid in scope), refresh_token, expires_in, via the password grant: the fast
        path for tests that only need tokens. extra_claims become top-level claims of the access token (nanoidp's
        `extra`; it refuses registered and user-identity names such as sub, aud, groups)."""
        data = {"grant_type": "password", "username": username, "password": password, "scope": scope}
        if extra_claims:
            data["extra"] = json.dumps(extra_claims)
        return self._token_request(data)

    def refresh(self, refresh_token: str, scope: str | None = None) -> dict[str, Any]:
        """The refresh grant, as the CLI would send it (public client: no secret). Returns a new refresh token too."""
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scope is not None:
            data["scope"] = scope
        return self._token_request(data)

    def device_authorization(self, scope: str = DEFAULT_SCOPE) -> dict[str, Any]:
        """Start a device flow as the public client: device_code, user_code, verification_uri(_complete), interval."""
        response = self._post(self._endpoint("device_authorization_endpoint"),
                              {"client_id": self.client_id, "scope": scope})
        if response.status_code != 200:
            raise IdPError("device authorization refused", response.status_code, response.text)
        result: dict[str, Any] = response.json()
        return result

    def poll_device(self, device_code: str, timeout: float = 15.0) -> dict[str, Any]:
        """Poll the token endpoint with the device code until tokens arrive (or an error other than
        authorization_pending / slow_down), honouring nanoidp's interval as a client must."""
        deadline = time.monotonic() + timeout
        interval = 1.0
        data = {"client_id": self.client_id, "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": device_code}
        while True:
            response = self._post(self._endpoint("token_endpoint"), data)
            if response.status_code == 200:
                result: dict[str, Any] = response.json()
                return result
            error = response.json().get("error") if response.headers.get("content-type", "").startswith(
                "application/json") else None
            if error == "slow_down":
                interval += 1
            elif error != "authorization_pending":
                raise IdPError("device token poll failed", response.status_code, response.text)
            if time.monotonic() + interval > deadline:
                raise IdPError(f"no tokens for the device code within {timeout} s")
            time.sleep(interval)

    def _device_page(self, user_code: str, username: str, password: str, action: str) -> None:
        """Be the user's browser on the verification page: open it with the code, fill nanoidp's form, submit."""
        url = f"{self.issuer}/device?{urllib.parse.urlencode({'user_code': user_code})}"
        with self.client() as browser:
            page = browser.get(url)
            if page.status_code != 200:
                raise IdPError("device verification page", page.status_code, page.text)
            form = _login_form(_parse_page(page.text), url, page)
            data = {**form.fields, "user_code": user_code, "username": username, "password": password,
                    "action": action}
            result = browser.post(urllib.parse.urljoin(url, form.action or url), data=data)
        decided = "Device authorized" if action == "authorize" else "Device authorization denied"
        if result.status_code != 200 or decided not in result.text:
            alerts = "; ".join(" ".join(a.split()) for a in _parse_page(result.text).alerts)
            raise IdPError(f"device {action} for {username!r} failed: {alerts or 'no decision on the page'}",
                           result.status_code, result.text)

    def approve_device(self, user_code: str, username: str, password: str) -> None:
        """Log in on the device verification page and approve `user_code`; raises IdPError with nanoidp's message
        (wrong password, unknown or used code) otherwise."""
        self._device_page(user_code, username, password, "authorize")

    def deny_device(self, user_code: str) -> None:
        """Deny `user_code` on the verification page (the device's poll then gets access_denied)."""
        self._device_page(user_code, "", "", "deny")

    def authorize_url(
        self,
        redirect_uri: str,
        code_challenge: str,
        state: str,
        scope: str = DEFAULT_SCOPE,
        *,
        nonce: str | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """The authorization request URL the CLI would open (code flow, PKCE S256). `claims` is the OIDC claims
        parameter, the only way to get e.g. groups or email into nanoidp's ID token."""
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                  "scope": scope, "state": state, "code_challenge": code_challenge, "code_challenge_method": "S256"}
        if nonce is not None:
            params["nonce"] = nonce
        if claims is not None:
            params["claims"] = json.dumps(claims)
        return f"{self._endpoint('authorization_endpoint')}?{urllib.parse.urlencode(params)}"

    def login_browser(self, authorize_url: str, username: str, password: str) -> str:
        """Be the browser of the code flow: open `authorize_url`, submit nanoidp's login form, and return the
        redirect Location (the loopback callback URL with code and state, or with error=...) without following it.
        Raises IdPError when no redirect comes (e.g. wrong password: nanoidp shows the form again)."""
        with self.client() as browser:
            page = browser.get(authorize_url)
            if page.is_redirect:
                return str(page.headers["location"])  # an error nanoidp may send back to the client
            if page.status_code != 200:
                raise IdPError("authorization request refused", page.status_code, page.text)
            form = _login_form(_parse_page(page.text), authorize_url, page)
            target = urllib.parse.urljoin(str(page.url), form.action or str(page.url))
            result = browser.post(target, data={**form.fields, "username": username, "password": password})
        if not result.is_redirect:
            alerts = "; ".join(" ".join(a.split()) for a in _parse_page(result.text).alerts)
            raise IdPError(f"login of {username!r} did not redirect: {alerts or 'no message'}",
                           result.status_code, result.text)
        return str(result.headers["location"])

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """The authorization_code grant with the PKCE verifier, as the public client."""
        return self._token_request({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                    "code_verifier": code_verifier})


def _rotate_without_previous(keys_dir: Path) -> str:
    """Publish a fresh RSA key with no previous keys in nanoidp's keys directory, under its lock and through its
    journaled rotation (nanoidp.services.key_directory): what a second nanoidp process does when it rotates, which the
    server notices by the marker. nanoidp itself cannot drop retired keys on rotation (its API keeps up to
    jwt.max_previous_keys), and a restart to change that setting would cost a start."""
    from nanoidp.services import key_directory  # type: ignore[import-untyped]

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bundle = key_directory.Bundle(
        kid=uuid.uuid4().hex,  # the form of nanoidp's own kids
        private_pem=private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()),
        public_pem=private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo),
        certificate_pem=b"",  # the SAML certificate: the server makes one for the new key when it adopts it
        previous=(),
    )
    with key_directory.locked(keys_dir):
        key_directory.rotate(keys_dir, bundle)
    return str(bundle.kid)


@contextlib.contextmanager
def running_idp(
    tmp: Path,
    users: Sequence[IdPUser],
    *,
    access_token_ttl: int = 300,
    tls: bool = True,
    client_id: str = DEFAULT_CLIENT_ID,
    audience: str = DEFAULT_AUDIENCE,
    redirect_uris: Sequence[str] = LOOPBACK_REDIRECT_URIS,
) -> Iterator[NanoIdP]:
    """A started nanoidp for the duration of the block, always stopped afterwards. Its log is tmp/nanoidp.log.

    The port is picked free before the server binds it (the issuer, written into the configuration, names it), so
    another process can take it in between: then the start is tried again on another port, up to three times."""
    for attempt in range(3):
        idp = NanoIdP(tmp, users, access_token_ttl=access_token_ttl, tls=tls, client_id=client_id,
                      audience=audience, redirect_uris=redirect_uris)
        try:
            idp.start()
            break
        except RuntimeError as exc:
            if attempt == 2 or "Address already in use" not in str(exc):
                raise
    try:
        yield idp
    finally:
        idp.stop()


# --------------------------------------------------------------------------------------------------------------------
# serve: the subprocess side
# --------------------------------------------------------------------------------------------------------------------


def _shorten_token_lifetime(ttl_seconds: int) -> None:
    """Give access and ID tokens `ttl_seconds` although nanoidp counts lifetimes in whole minutes: when a grant asks
    for the configured lifetime (every grant does, unless the request names `exp`), sign with the fraction of a
    minute instead. nanoidp's create_jwt computes exp as now + timedelta(minutes=...), so a float is exact to the
    second; only expires_in, computed as minutes * 60, needs putting back to an integer."""
    from nanoidp.services.token import TokenService  # type: ignore[import-untyped]

    original = TokenService.create_token

    def create_token(self: Any, user: Any, exp_minutes: int | None = None, *args: Any, **kwargs: Any) -> Any:
        if exp_minutes is None or exp_minutes == self.loaded.settings.token_expiry_minutes:
            response = original(self, user, ttl_seconds / 60, *args, **kwargs)
            response["expires_in"] = ttl_seconds
            return response
        return original(self, user, exp_minutes, *args, **kwargs)

    TokenService.create_token = create_token


def _serve(argv: Sequence[str]) -> None:
    """Run nanoidp's Flask app, over TLS when given a certificate (nanoidp's own CLI cannot)."""
    parser = argparse.ArgumentParser(prog="oidc_idp.py serve")
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttl-seconds", type=int, required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    if args.ttl_seconds % 60:
        _shorten_token_lifetime(args.ttl_seconds)
    from nanoidp.app import create_app  # type: ignore[import-untyped]

    app = create_app(args.config)
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    print(f"nanoidp serving on {'https' if context else 'http'}://{HOST}:{args.port}", flush=True)
    app.run(host=HOST, port=args.port, ssl_context=context, threaded=True, use_reloader=False, debug=False)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "serve":
        sys.exit("usage: oidc_idp.py serve --config DIR --port N --ttl-seconds N [--tls-cert PEM --tls-key PEM]")
    _serve(sys.argv[2:])
