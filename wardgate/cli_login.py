"""`wardgate login`, `logout` and `whoami`: a person's own OIDC login, kept in their config directory.

The gateway names the provider and the public client (``GET /api/v1/login``); the flow runs between the user's
browser and the provider; the gateway is asked once, with the new token, who it takes the user to be, so a login
the gateway would refuse (wrong audience, no allowed group) fails here with the gateway's reason, not later in psql.
"""

from __future__ import annotations

import sys
import webbrowser
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
import httpx

from .identity.jwks import http_client
from .login import profile as profiles
from .login.flows import (
    LoginError,
    apply_tokens,
    browser_flow,
    choose_credential,
    device_flow,
    fresh_token,
    provider,
    revoke,
)
from .login.profile import Profile, ProfileError


def _fail(message: str) -> NoReturn:
    click.echo(f"wardgate: {message}", err=True)
    sys.exit(1)


def _get(gateway: str, path: str, ca_file: str | None, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with http_client(ca_file) as client:
            resp = client.get(gateway.rstrip("/") + path, headers=headers)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the gateway at {gateway}: {exc.__class__.__name__}: {exc}")
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code != 200 or not isinstance(body, dict):
        detail = body.get("detail") if isinstance(body, dict) else None
        _fail(f"the gateway answered {resp.status_code}: {detail or resp.text[:200]}")
    return body


def _say(line: str) -> None:
    click.echo(line, err=True)


@click.command("login")
@click.option("--gateway", "gateway", required=True, metavar="URL", help="The gateway's HTTP API, https://HOST:PORT.")
@click.option("--browser", is_flag=True, help="Log in in a browser on this machine (code flow with PKCE) "
              "instead of the device flow.")
@click.option("--issuer", default=None, help="The identity provider to use, when the gateway trusts several.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA certificate(s) to trust for the gateway (default: the system store).")
@click.option("--idp-ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA certificate(s) to trust for the identity provider (default: the system store).")
@click.option("--postgres", default=None, metavar="HOST:PORT",
              help="The gateway's PostgreSQL address, when clients reach it by another name than the API's host.")
def login(gateway: str, browser: bool, issuer: str | None, ca_file: str | None, idp_ca_file: str | None,
          postgres: str | None) -> None:
    """Log in to a gateway with your company identity; the tokens are kept in your config directory (0600)."""
    gateway = gateway.rstrip("/")
    info = _get(gateway, "/api/v1/login", ca_file)
    choices = [p for p in info.get("providers", []) if issuer is None or p.get("issuer") == issuer]
    if not choices:
        _fail(f"the gateway at {gateway} offers no login" + (f" with {issuer}" if issuer else "") +
              " (its identity.oidc providers need a client_id)")
    if len(choices) > 1:
        _fail("the gateway trusts several identity providers; choose one with --issuer: " +
              ", ".join(p["issuer"] for p in choices))
    chosen = choices[0]
    try:
        idp = provider(chosen["issuer"], chosen["client_id"], chosen["scopes"], chosen.get("audience", []),
                       idp_ca_file)
        tokens = browser_flow(idp, _say, webbrowser.open) if browser else device_flow(idp, _say)
    except LoginError as exc:
        _fail(f"login failed: {exc}")
    if postgres is None:
        port = str(info.get("postgres", "")).rpartition(":")[2]
        host = urlsplit(gateway).hostname or "127.0.0.1"
        postgres = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    prof = Profile(gateway=gateway, postgres=postgres, issuer=idp.issuer, client_id=idp.client_id,
                   token_endpoint=idp.endpoint("token_endpoint"),
                   credential=choose_credential(tokens, idp.audience),
                   revocation_endpoint=idp.metadata.get("revocation_endpoint"), ca_file=ca_file,
                   idp_ca_file=idp_ca_file, scopes=idp.scopes)
    apply_tokens(prof, tokens)
    me = _get(gateway, "/api/v1/whoami", ca_file, prof.token())
    prof.user = str(me["user"])
    try:
        profiles.save(prof)
    except (OSError, ProfileError) as exc:
        _fail(f"cannot keep the login: {exc}")
    _say(f"logged in to {gateway} as {prof.user} (groups: {', '.join(me['groups']) or 'none'}); "
         f"token valid until {_when(prof.expires_at)}" + (", refreshed as needed" if prof.refresh_token else ""))


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _profile(gateway: str | None) -> Profile:
    try:
        return profiles.load(gateway)
    except ProfileError as exc:
        _fail(str(exc))


@click.command("whoami")
@click.option("--gateway", default=None, metavar="URL", help="Which login (default: the last one).")
def whoami(gateway: str | None) -> None:
    """Who the gateway takes you to be: user name, groups, identity provider and token expiry."""
    prof = _profile(gateway)
    try:
        token = fresh_token(prof)
    except ProfileError as exc:
        _fail(str(exc))
    me = _get(prof.gateway, "/api/v1/whoami", prof.ca_file, token)
    click.echo(f"user     {me['user']}\ngroups   {', '.join(me['groups']) or '-'}\n"
               f"issuer   {me['issuer']}\nsubject  {me['subject']}\nmethod   {me['method']}\n"
               f"gateway  {prof.gateway} (PostgreSQL {prof.postgres})\nexpires  {_when(me['expires_at'])}"
               + (" (refreshed as needed)" if prof.refresh_token else ""))


@click.command("logout")
@click.option("--gateway", default=None, metavar="URL", help="Which login (default: the last one).")
def logout(gateway: str | None) -> None:
    """Forget the login's tokens, and revoke its refresh token at the provider where it allows."""
    prof = _profile(gateway)
    outcome = revoke(prof)
    profiles.forget(prof.gateway)
    click.echo(f"logged out of {prof.gateway}: {outcome}")
