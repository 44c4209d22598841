"""`wardgate sessions replay ID`: a recorded session as it happened, in the terminal or as an asciicast v2 file."""

from __future__ import annotations

import sys

import click

from .audit.replay import asciicast, frames, play
from .cli_common import _load, _store, config_options
from .store import StoreError


@click.command("replay")
@config_options
@click.argument("session_id")
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="1 is real time, 10 ten times faster, 0 prints everything at once.")
@click.option("--max-wait", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Longest pause between two steps, in seconds after --speed (idle time is skipped).")
@click.option("--format", "fmt", type=click.Choice(["terminal", "asciicast"]), default="terminal",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file (asciicast: default SESSION.cast).")
@click.option("--color/--no-color", default=None, help="ANSI colours (default: when writing to a terminal, and "
              "always in an asciicast).")
def sessions_replay(config_path: str | None, store_url: str | None, session_id: str, speed: float, max_wait: float,
                    fmt: str, output: str | None, color: bool | None) -> None:
    """Replay a session (by id or unique id prefix) from its audit: statements as recorded (literals redacted),
    decisions and rules, reviews and votes, the first rows of each result as the client received them (masked),
    errors and timings."""
    store = _store(_load(config_path, store_url))
    try:
        session = store.session(session_id)
        if session is None:
            click.echo(f"wardgate: no single session matches {session_id!r}", err=True)
            sys.exit(1)
        if fmt == "asciicast":
            path = output or f"{session['id'][:8]}.cast"
            with open(path, "w", encoding="utf-8") as fh:
                n = asciicast(frames(store, session, color=color is not False), fh,
                              title=f"wardgate session {session['id']} ({session['user']} on "
                                    f"{session['connection']})",
                              timestamp=session["started_at"].timestamp(), speed=speed or 1.0, max_wait=max_wait)
            click.echo(f"wrote {path}: {n} events (play it with: asciinema play {path})", err=True)
            return
        if output is not None:
            with open(output, "w", encoding="utf-8") as fh:
                play(frames(store, session, color=bool(color)), fh, speed=0)
            return
        tty = sys.stdout.isatty()
        play(frames(store, session, color=tty if color is None else color), sys.stdout, speed=speed,
             max_wait=max_wait)
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(1)
