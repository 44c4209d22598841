"""What every `wardgate` command shares: the ``-c FILE`` / ``--store URL`` options, loading, output helpers."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from .audit.chain import CLI_CHAIN
from .config import Config, ConfigError, Overrides, load_config
from .store import Store, StoreError
from .store.db import Write

F = TypeVar("F", bound=Callable[..., Any])


def config_options(func: F) -> F:
    func = click.option(
        "--store",
        "store_url",
        envvar="WARDGATE_STORE",
        metavar="URL",
        help="Store URL (sqlite:///PATH or postgresql://...); overrides the file.",
    )(func)
    func = click.option(
        "-c",
        "--config",
        "config_path",
        envvar="WARDGATE_CONFIG",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="The YAML configuration file.",
    )(func)
    return func


def _load(config_path: str | None, store_url: str | None, listen_postgres: str | None = None) -> Config:
    try:
        return load_config(config_path, Overrides(store=store_url, listen_postgres=listen_postgres))
    except ConfigError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(2)


def _store(config: Config) -> Store:
    from .server import open_store

    try:
        store = open_store(config)
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(1)
    store.audit_key_file = config.audit_key_file()
    return store


def _json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_default, sort_keys=True))


def _default(o: object) -> str:
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def _ts(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def cli_event(store: Store, kind: str, subject: str | None, connection: str | None, detail: dict[str, Any],
              session_id: str | None = None) -> None:
    """An audit event a command records itself (it has no gateway journal): written to the store at once, on the
    chain ``cli``, and the chain's new head signed when this user can read the checkpoint key (otherwise the
    next gateway start signs it)."""
    head = store.write([Write("events", {
        "at": time.time(), "kind": kind, "subject": subject, "connection": connection, "client_addr": "cli",
        "session_id": session_id, "detail": json.dumps(detail, sort_keys=True, default=str)})], chain=CLI_CHAIN)
    key_path = store.audit_key_file
    if head is not None and key_path is not None and os.access(key_path, os.R_OK):
        from .audit.signing import Checkpointer
        from .identity.keys import key_file

        checkpointer = Checkpointer(store, key_file(key_path), 1, 0.0)
        checkpointer.moved(head)
