"""`wardgate reviews`: list, show, approve and deny the statements rules hold for review.

Listing needs only the store. Voting needs the reviewer's own token (``--token`` or ``WARDGATE_TOKEN``): the
vote is cast as the identity the token proves, never as a name given on the command line, so nobody approves as
someone else and the requester cannot approve their own request. Every vote, and the decision it completes, is
an audit event.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from .cli_common import _json, _load, _store, _table, _ts, cli_event, config_options
from .identity.model import AuthFailure, Identity
from .reviews.model import APPROVED, DENIED, PENDING, VoteRefused
from .reviews.votes import cast, details
from .store import Store, StoreError
from .store.notifications import Outbox
from .store.reviews import Review, ReviewStore


@click.group()
def reviews() -> None:
    """Statements held for review: who asked, what, and who decided."""


def _reviews(config_path: str | None, store_url: str | None) -> tuple[Store, ReviewStore]:
    store = _store(_load(config_path, store_url))
    return store, ReviewStore(store)


def _find(rs: ReviewStore, review_id: str) -> Review:
    try:
        review = rs.get(review_id)
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(1)
    if review is None:
        click.echo(f"wardgate: no review request {review_id} (or the prefix names several)", err=True)
        sys.exit(1)
    return review


def _state(r: Review) -> str:
    if r.status == PENDING and r.expires_at <= datetime.now(UTC):
        return "expired"  # nobody has marked it yet: the waiting session or the next vote will
    return r.status


@reviews.command("list")
@config_options
@click.option("--status", type=click.Choice(["pending", "approved", "denied", "expired", "withdrawn", "executed"]),
              default=None, help="Only requests in this state.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def reviews_list(config_path: str | None, store_url: str | None, status: str | None, limit: int,
                 as_json: bool) -> None:
    """The most recent requests first."""
    _, rs = _reviews(config_path, store_url)
    rows = rs.list(status, limit)
    if as_json:
        _json([r.public() for r in rows])
        return
    _table(
        ["ID", "STATE", "CREATED (UTC)", "REQUESTER", "CONNECTION", "RULE", "NEEDS", "STATEMENT"],
        [[r.id, _state(r), _ts(r.created_at), r.requester, r.connection, r.rule, r.spec.describe(),
          _short(r.redacted or "")] for r in rows],
    )


@reviews.command("show")
@config_options
@click.argument("review_id")
@click.option("--json", "as_json", is_flag=True)
def reviews_show(config_path: str | None, store_url: str | None, review_id: str, as_json: bool) -> None:
    """One request with its votes. The statement is shown with its literals replaced by $n."""
    _, rs = _reviews(config_path, store_url)
    r = _find(rs, review_id)
    if as_json:
        _json(r.public())
        return
    click.echo(f"review {r.id}: {_state(r)}")
    click.echo(f"  requested  {_ts(r.created_at)} UTC by {r.requester} "
               f"(groups: {', '.join(r.requester_groups) or '-'}) on {r.connection}")
    click.echo(f"  rule       {r.rule}: {r.rule_reason or '-'}")
    click.echo(f"  statement  {r.redacted or '-'}" + (f"  ({r.param_count} parameters)" if r.param_count else ""))
    click.echo(f"  reason     {r.reason or '-'}")
    click.echo(f"  needs      {r.spec.describe()}; expires {_ts(r.expires_at)} UTC")
    for v in r.votes:
        click.echo(f"  vote       {'approve' if v.approve else 'deny'} by {v.reviewer} "
                   f"({', '.join(v.groups)})" + (f": {v.reason}" if v.reason else ""))
    if r.decided_at:
        click.echo(f"  decided    {_ts(r.decided_at)} UTC" + (f" by {', '.join(r.decided_by)}" if r.decided_by else "")
                   + (f": {r.decision_reason}" if r.decision_reason else ""))
    if r.executed_at:
        click.echo(f"  executed   {_ts(r.executed_at)} UTC")


def _reviewer(store: Store, config_path: str | None, store_url: str | None, token: str | None,
              review_id: str) -> Identity:
    if not token:
        click.echo("wardgate: voting needs your token: --token or WARDGATE_TOKEN (wardgate token create ...)",
                   err=True)
        sys.exit(2)
    from .identity.verify import authenticators, verify_any

    cfg = _load(config_path, store_url)
    try:
        return verify_any(authenticators(cfg, store), token)
    except AuthFailure as exc:
        cli_event(store, "auth_failed", None, None, {"review": review_id, "via": "wardgate reviews",
                                                     "reason": exc.reason})
        click.echo(f"wardgate: your token was refused: {exc.reason}", err=True)
        sys.exit(1)
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(1)


def _vote(config_path: str | None, store_url: str | None, token: str | None, review_id: str, approve: bool,
          reason: str) -> None:
    store, rs = _reviews(config_path, store_url)
    review = _find(rs, review_id)
    who = _reviewer(store, config_path, store_url, token, review.id)
    cfg = _load(config_path, store_url)

    def record(kind: str, r: Review, detail: dict[str, object]) -> None:
        _event(store, kind, who, r, detail)

    try:
        after = cast(rs, Outbox(store), cfg.notifications, who, review, approve, reason, record, "cli")
    except VoteRefused as exc:
        click.echo(f"wardgate: your vote on review {review.id} was refused: {exc.reason}", err=True)
        sys.exit(1)
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(1)
    if after.status == APPROVED:
        then = ("the grant starts at the requester's first session" if after.kind == "access"
                else "the statement runs in the requester's session, once")
        click.echo(f"review {after.id} approved by {', '.join(after.decided_by)}: {then}")
    elif after.status == DENIED:
        click.echo(f"review {after.id} denied")
    else:
        approvals = sum(1 for v in after.votes if v.approve)
        click.echo(f"vote recorded: review {after.id} has {approvals} approval{'s' if approvals != 1 else ''} and "
                   f"is still pending ({after.spec.describe()})")


def _event(store: Store, kind: str, who: Identity, review: Review, detail: dict[str, object]) -> None:
    cli_event(store, kind, who.subject, review.connection, details(review, who, detail), review.session_id)


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_TOKEN = click.option("--token", envvar="WARDGATE_TOKEN", default=None,
                      help="Your own token (default: $WARDGATE_TOKEN); the vote is cast as its identity.")


@reviews.command("approve")
@config_options
@_TOKEN
@click.argument("review_id")
@click.option("--reason", default="", help="Why (recorded with the vote).")
def reviews_approve(config_path: str | None, store_url: str | None, token: str | None, review_id: str,
                    reason: str) -> None:
    """Approve a pending request (as the identity of your token)."""
    _vote(config_path, store_url, token, review_id, True, reason)


@reviews.command("deny")
@config_options
@_TOKEN
@click.argument("review_id")
@click.option("--reason", default="", help="Why (the requester sees it).")
def reviews_deny(config_path: str | None, store_url: str | None, token: str | None, review_id: str,
                 reason: str) -> None:
    """Deny a pending request: one denial is enough, and the requester gets the reason."""
    _vote(config_path, store_url, token, review_id, False, reason)
