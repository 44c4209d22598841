"""`wardgate access`: just-in-time access to a connection (docs/access.md).

``request`` asks, as the identity of the caller's own token, for a connection for a while (and optionally for
groups on top of the caller's, e.g. write access); reviewers decide it with ``wardgate reviews approve|deny``
like any review. The grant starts at its first session, lasts at most the connection's ``max_duration``, and
ends every session that uses it when it expires or is revoked (``revoke``).
"""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime

import click

from .cli_common import _json, _load, _store, _table, _ts, cli_event, config_options
from .config import format_duration, parse_duration
from .identity.model import AuthFailure
from .reviews.notify import REQUESTED, messages
from .store import StoreError
from .store.grants import GrantStore
from .store.notifications import Outbox
from .store.reviews import ReviewStore


@click.group()
def access() -> None:
    """Just-in-time access grants: request, list, revoke."""


@access.command("request")
@config_options
@click.argument("connection")
@click.option("--for", "duration", required=True, help="How long, from the first session: 30m, 1h, 4h...")
@click.option("--reason", required=True, help="Why (reviewers see it).")
@click.option("--groups", default="", help="Comma-separated groups to hold on top of yours (the connection's "
                                           "access.groups allow which).")
@click.option("--token", envvar="WARDGATE_TOKEN", default=None, help="Your token (default: $WARDGATE_TOKEN).")
def access_request(config_path: str | None, store_url: str | None, connection: str, duration: str, reason: str,
                   groups: str, token: str | None) -> None:
    """Ask for access to CONNECTION for a while; prints the review request's id."""
    cfg = _load(config_path, store_url)
    conn = cfg.connections.get(connection)
    if conn is None:
        raise click.BadParameter(f"no connection {connection!r}", param_hint="CONNECTION")
    if conn.access is None:
        raise click.BadParameter(f"connection {connection!r} takes no access requests (it has no access settings)",
                                 param_hint="CONNECTION")
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    capped = min(seconds, conn.access.max_duration)
    wanted = [g.strip() for g in groups.split(",") if g.strip()]
    bad = [g for g in wanted if g not in conn.access.groups]
    if bad:
        raise click.BadParameter(f"not grantable on {connection}: {', '.join(bad)} (grantable: "
                                 f"{', '.join(conn.access.groups) or 'none'})", param_hint="--groups")
    if not token:
        raise click.UsageError("a request needs your token: --token or WARDGATE_TOKEN")
    store = _store(cfg)
    from .identity.verify import authenticators, verify_any

    try:
        who = verify_any(authenticators(cfg, store), token)
    except AuthFailure as exc:
        click.echo(f"wardgate: your token was refused: {exc.reason}", err=True)
        sys.exit(1)
    spec = conn.access.review.spec()
    what = f"ACCESS {connection} FOR {format_duration(capped)}"
    if wanted:
        what += f" WITH GROUPS {', '.join(wanted)}"
    try:
        review = ReviewStore(store).create(
            spec=spec, requester=who.subject, requester_groups=who.groups, connection=connection, session_id=None,
            gateway="cli", rule="access", rule_reason="just-in-time access", statement=what, redacted=what,
            param_count=0, reason=reason, kind="access", access={"duration": capped, "groups": wanted})
        Outbox(store).enqueue(REQUESTED, review.id, messages(cfg.notifications, REQUESTED, review.public(), "cli"))
        cli_event(store, "access_requested", who.subject, connection, {
            "review": review.id, "duration": capped, "groups": wanted, "reason": reason,
            "approvers": list(spec.approvers)})
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(1)
    note = f" (capped at the connection's maximum, {format_duration(capped)})" if capped < seconds else ""
    click.echo(f"access request {review.id}: {what}{note}; waiting for {spec.describe()} "
               f"(wardgate reviews approve {review.id}); the time starts at your first session")


@access.command("list")
@config_options
@click.option("--user", default=None)
@click.option("--connection", default=None)
@click.option("--json", "as_json", is_flag=True)
def access_list(config_path: str | None, store_url: str | None, user: str | None, connection: str | None,
                as_json: bool) -> None:
    """Grants (requests waiting for approval are in `wardgate reviews list`)."""
    rows = GrantStore(_store(_load(config_path, store_url))).find(user, connection)
    if as_json:
        _json([g.public() for g in rows])
        return
    at = datetime.now(UTC)
    _table(["ID", "USER", "CONNECTION", "GROUPS", "STARTED (UTC)", "EXPIRES (UTC)", "STATE", "APPROVED BY"],
           [[g.id, g.subject, g.connection, ",".join(g.groups) or "-", _ts(g.created_at), _ts(g.expires_at),
             "revoked" if g.revoked_at else ("active" if g.active(at) else "expired"), ",".join(g.approved_by)]
            for g in rows])


@access.command("revoke")
@config_options
@click.argument("grant_id")
@click.option("--reason", default="", help="Why (recorded).")
def access_revoke(config_path: str | None, store_url: str | None, grant_id: str, reason: str) -> None:
    """Revoke a grant: every session using it ends within seconds, on every gateway of the store."""
    store = _store(_load(config_path, store_url))
    grants = GrantStore(store)
    g = grants.get(grant_id)
    if g is None:
        click.echo(f"wardgate: no grant {grant_id}", err=True)
        sys.exit(1)
    by = getpass.getuser()
    if not grants.revoke(g.id, by, reason or None):
        click.echo(f"wardgate: grant {g.id} is already revoked", err=True)
        sys.exit(1)
    cli_event(store, "access_revoked", g.subject, g.connection, {"grant": g.id, "by": by, "reason": reason or None})
    click.echo(f"revoked {g.id}")
