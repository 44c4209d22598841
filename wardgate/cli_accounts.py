"""`wardgate service-account`: named identities for services and agents, whose groups the gateway keeps.

Tokens for an account come from `wardgate token create --service-account NAME`; every change here is an audit
event, because who may act as which account is exactly what an auditor asks about.
"""

from __future__ import annotations

import getpass
import sys

import click

from .cli_common import _json, _load, _store, _table, _ts, cli_event, config_options
from .config import NAME_RE
from .store.accounts import AccountExists, ServiceAccounts


@click.group("service-account")
def service_account() -> None:
    """Service accounts for services and agents (their tokens: wardgate token create --service-account)."""


def _groups(value: str) -> list[str]:
    return [g.strip() for g in value.split(",") if g.strip()]


@service_account.command("create")
@config_options
@click.argument("name")
@click.option("--groups", default="", help="Comma-separated groups the account's tokens act with.")
@click.option("--description", default="", help="What uses it (shown in listings).")
def account_create(config_path: str | None, store_url: str | None, name: str, groups: str, description: str) -> None:
    """Create a service account."""
    if not NAME_RE.match(name):
        raise click.BadParameter("letters, digits, _ . - (at most 63)", param_hint="NAME")
    store = _store(_load(config_path, store_url))
    by = getpass.getuser()
    try:
        acct = ServiceAccounts(store).create(name, _groups(groups), description, by)
    except AccountExists:
        click.echo(f"wardgate: service account {name} already exists", err=True)
        sys.exit(1)
    cli_event(store, "service_account_created", name, None, {"groups": list(acct.groups), "by": by})
    click.echo(f"service account {name} (groups: {','.join(acct.groups) or '-'}); "
               f"issue a token: wardgate token create --service-account {name}")


@service_account.command("list")
@config_options
@click.option("--json", "as_json", is_flag=True)
def account_list(config_path: str | None, store_url: str | None, as_json: bool) -> None:
    """List service accounts."""
    store = _store(_load(config_path, store_url))
    accounts = ServiceAccounts(store).all()
    if as_json:
        _json([a.public() for a in accounts])
        return
    tokens: dict[str, int] = {}
    for t in store.tokens():
        if t["account"] and t["revoked_at"] is None:
            tokens[t["account"]] = tokens.get(t["account"], 0) + 1
    _table(["NAME", "GROUPS", "TOKENS", "CREATED (UTC)", "BY", "STATE", "DESCRIPTION"],
           [[a.name, ",".join(a.groups) or "-", str(tokens.get(a.name, 0)), _ts(a.created_at), a.created_by,
             "disabled" if a.disabled_at else "active", a.description] for a in accounts])


@service_account.command("set-groups")
@config_options
@click.argument("name")
@click.argument("groups")
def account_set_groups(config_path: str | None, store_url: str | None, name: str, groups: str) -> None:
    """Replace an account's groups (comma-separated); its tokens act with them from their next login."""
    store = _store(_load(config_path, store_url))
    accounts = ServiceAccounts(store)
    before = accounts.get(name)
    if before is None or not accounts.set_groups(name, _groups(groups)):
        click.echo(f"wardgate: no service account {name}", err=True)
        sys.exit(1)
    cli_event(store, "service_account_changed", name, None,
              {"groups_before": list(before.groups), "groups": _groups(groups), "by": getpass.getuser()})
    click.echo(f"service account {name}: groups {','.join(_groups(groups)) or '-'}")


@service_account.command("disable")
@config_options
@click.argument("name")
def account_disable(config_path: str | None, store_url: str | None, name: str) -> None:
    """Disable an account: every token of it is refused from now on, on every gateway of the store."""
    store = _store(_load(config_path, store_url))
    by = getpass.getuser()
    if not ServiceAccounts(store).disable(name, by):
        known = ServiceAccounts(store).get(name)
        click.echo(f"wardgate: service account {name} " + ("is already disabled" if known else "does not exist"),
                   err=True)
        sys.exit(1)
    cli_event(store, "service_account_disabled", name, None, {"by": by})
    click.echo(f"disabled {name}")
