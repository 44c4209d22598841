"""`wardgate exec`: one query string through the gateway, without a database client.

It is a client of the gateway like psql: it connects to the gateway's listener with the caller's token and sends
the text as one simple Query, so the same pipeline decides, masks, holds for review and records it. That is how
services, runbooks and AI agents run one-off statements. With ``--no-wait`` (``wardgate.review_wait = off``) a statement
held for review fails at once with its request's id and the request stays pending (the command exits 3); once
approved, running the same command again runs it, once.
"""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import click
import psycopg

from .cli_common import _load, config_options
from .config import Config, parse_host_port
from .identity.oidc import claim, unverified_claims

EXIT_HELD = 3  # left waiting for review (--no-wait)


def _user_of(token: str, cfg: Config) -> str:
    """The user name a token is for: its sub, or for an identity provider's token the claim the config names
    (the gateway checks the token and that it matches; this only reads it)."""
    claims = unverified_claims(token) or {}
    name: object = claims.get("sub")
    for provider in cfg.identity.oidc:
        if provider.issuer == claims.get("iss"):
            name = claim(claims, provider.username_claim)
    if not isinstance(name, str) or not name:
        raise click.UsageError("cannot tell the user name from the token (give --user)")
    return name


@click.command("exec")
@config_options
@click.argument("connection")
@click.option("--sql", "text", required=True, help="The query string (several statements run as one message).")
@click.option("--token", envvar="WARDGATE_TOKEN", default=None, help="Your token (default: $WARDGATE_TOKEN).")
@click.option("--user", default=None, help="The user name (default: the token's).")
@click.option("--host", default=None, help="The gateway (default: listen.postgres of the config).")
@click.option("--port", type=int, default=None)
@click.option("--sslmode", default="require", show_default=True,
              type=click.Choice(["disable", "require", "verify-ca", "verify-full"]))
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for a review, or leave it pending and exit 3 (run the same command again once approved).")
def exec_(config_path: str | None, store_url: str | None, connection: str, text: str, token: str | None,
          user: str | None, host: str | None, port: int | None, sslmode: str, fmt: str, wait: bool) -> None:
    """Run one query string on CONNECTION through the gateway and print its results.

    Without --token, the login of `wardgate login` is used (its gateway, user name and current token)."""
    params: dict[str, Any] = {}
    if not token:
        from .login.flows import fresh_token
        from .login.profile import ProfileError, load

        try:
            prof = load(None)
            token = fresh_token(prof)
        except ProfileError as exc:
            raise click.UsageError(f"exec needs your token: --token, WARDGATE_TOKEN, or wardgate login ({exc})") \
                from None
        h, p = parse_host_port(prof.postgres)
        host, port, user = host or h, port or p, user or prof.user
        if prof.ca_file and sslmode == "require":
            params.update(sslmode="verify-full", sslrootcert=prof.ca_file)
    if host is None or port is None or user is None:
        cfg = _load(config_path, store_url)
        h, p = parse_host_port(cfg.listen.postgres)
        host, port = host or h, port or p
        user = user or _user_of(token, cfg)
    params = {"host": host, "port": port, "dbname": connection, "user": user, "password": token, "sslmode": sslmode,
              "application_name": "wardgate exec", "connect_timeout": 10, **params}
    if not wait:  # the gateway answers a held statement at once with its review id (docs/reviews.md)
        params["options"] = "-c wardgate.review_wait=off"
    try:
        conn = psycopg.connect(autocommit=True, **params)
    except psycopg.OperationalError as exc:
        click.echo(f"wardgate: cannot connect to the gateway at {host}:{port}: {_first_line(exc)}", err=True)
        sys.exit(1)
    conn.add_notice_handler(lambda d: click.echo(f"{d.severity}: {d.message_primary or ''}", err=True))
    cur = psycopg.ClientCursor(conn)  # the simple protocol: the text is sent, and reviewed, as it is
    try:
        cur.execute(text.encode())
    except psycopg.Error as exc:
        conn.close()
        d = exc.diag
        if not wait and (d.message_detail or "").startswith("review: "):
            click.echo(f"{d.message_primary}\nonce approved, run the same command again", err=True)
            sys.exit(EXIT_HELD)
        click.echo(f"ERROR: {d.sqlstate or ''} {d.message_primary or _first_line(exc)}".replace("  ", " "), err=True)
        for label, value in (("DETAIL", d.message_detail), ("HINT", d.message_hint)):
            if value:
                click.echo(f"{label}: {value}", err=True)
        sys.exit(1)
    try:
        while True:
            _print(cur, fmt)
            if not cur.nextset():
                break
    finally:
        conn.close()


def _print(cur: psycopg.ClientCursor[Any], fmt: str) -> None:
    if cur.description is None:
        click.echo(cur.statusmessage or "")
        return
    names = [c.name for c in cur.description]
    rows = [[_text(v) for v in r] for r in cur.fetchall()]
    if fmt == "json":
        click.echo(json.dumps([dict(zip(names, r, strict=True)) for r in rows], indent=2))
    elif fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(names)
        w.writerows(["" if v is None else v for v in r] for r in rows)
    else:
        shown = [["NULL" if v is None else v for v in r] for r in rows]
        widths = [max([len(n)] + [len(r[i]) for r in shown]) for i, n in enumerate(names)]
        click.echo(" | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip())
        click.echo("-+-".join("-" * w for w in widths))
        for r in shown:
            click.echo(" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _text(v: object) -> str | None:
    """Values as text (JSON output keeps NULL as null); psycopg's Python values through str()."""
    return None if v is None else str(v)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
