"""`wardgate connect CONNECTION`: a local listener that logs in to the gateway for you (see docs/connect.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from urllib.parse import quote

import click

from .cli_login import _fail
from .login import profile as profiles
from .login.connect import LOCAL_HOST, Listener, PortInUse, default_port
from .login.profile import ProfileError


def _conninfo(value: str) -> str:
    """A libpq connection-string value, quoted when it must be."""
    if value and not any(c in value for c in " '\\\""):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@click.command("connect")
@click.argument("connection")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="The local port (default: one derived from the gateway and the connection, the same every time).")
@click.option("--gateway", default=None, metavar="URL", help="Which login (default: the last one).")
def connect(connection: str, port: int | None, gateway: str | None) -> None:
    """Listen on 127.0.0.1 for CONNECTION: local clients connect without a password, and the listener logs in to
    the gateway over TLS with your current token (refreshed as needed). Runs until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s wardgate connect: %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per token refresh
    try:
        prof = profiles.load(gateway)
        port = port or default_port(prof.gateway, connection)
        listener = Listener(prof, connection, port)
        listener.tokens.current()  # a usable token now, or the reason there is none
    except ProfileError as exc:
        _fail(str(exc))
    try:
        asyncio.run(_serve(listener, prof.gateway))
    except PortInUse as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot listen on {LOCAL_HOST}:{port}: {exc.strerror or exc}")


async def _serve(listener: Listener, gateway: str) -> None:
    await listener.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    port, conn, user = listener.port, listener.connection, listener.user
    click.echo(f"listening on {LOCAL_HOST}:{port} for {conn} on {gateway} as {user}")
    click.echo(f'psql "host={LOCAL_HOST} port={port} dbname={_conninfo(conn)} user={_conninfo(user)} '
               f'sslmode=disable"')
    click.echo(f"JDBC (DBeaver, DataGrip): jdbc:postgresql://{LOCAL_HOST}:{port}/{quote(conn, safe='')}"
               f"?user={quote(user, safe='')}&sslmode=disable")
    click.echo("no password needed; Ctrl-C stops the listener (and ends its sessions)", err=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await listener.close()
