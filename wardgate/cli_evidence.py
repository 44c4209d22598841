"""`wardgate evidence`: the auditor's report for a period, as one HTML file or as JSON (docs/evidence.md)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import click

from .cli_audit import _iso
from .cli_common import _load, _store, config_options
from .store import StoreError

_FORMATS = {".html": "html", ".htm": "html", ".json": "json"}


def _when(value: str | None, what: str) -> datetime | None:
    """A ``--from``/``--to`` bound as an aware UTC datetime, read exactly as `audit verify` reads it."""
    text = _iso(value, what)
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _write(path: Path, text: str) -> None:
    """Write next to the target and rename over it: a reader never sees half a report, and a run that fails
    leaves the previous report in place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would have made it (mkstemp makes it 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("evidence")
@config_options
@click.option("--from", "since", default=None, help="The period's start (UTC, inclusive): 2026-10-01 or "
                                                    "2026-10-01T08:00:00Z. Default: the first record.")
@click.option("--to", "until", default=None, help="The period's end (UTC, exclusive). Default: now.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="The report file; .html or .json chooses the format unless --format does.")
@click.option("--format", "fmt", type=click.Choice(["html", "json"]), default=None,
              help="html (one self-contained page) or json (docs/evidence.md lists the keys).")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint public key (PEM) you hold (`wardgate audit public-key`); repeatable. Without one, "
                   "the keys the store lists are used, and the report says that this proves only as much as the "
                   "store itself.")
@click.option("--max-items", default=1000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="List at most this many items per section (denials, reviews, failed logins...); every total is "
                   "still counted and stated.")
def evidence(config_path: str | None, store_url: str | None, since: str | None, until: str | None, output: Path,
             fmt: str | None, public_keys: tuple[str, ...], max_items: int) -> None:
    """Write a SOC 2 evidence report for a period: access by person and connection, denied and reviewed
    statements, masking, just-in-time grants, failed logins, configuration changes, activity over time, and the
    verification of the hash-chained audit. Exit 0 when the audit verifies, 1 when it does not (the report is
    written all the same: the failure is the evidence), 2 when no report could be made."""
    from .audit.evidence import gather, to_json
    from .audit.evidence_html import render
    from .audit.verify import keyring
    from .store.auditlog import AuditLog

    fmt = fmt or _FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise click.UsageError(f"cannot tell the format from {output.name!r}: name it .html or .json, or give --format")
    start, end = _when(since, "--from"), _when(until, "--to")
    if start is not None and end is not None and end <= start:
        raise click.UsageError("--to must be later than --from")
    store = _store(_load(config_path, store_url))
    began = time.monotonic()
    try:
        try:
            keys = keyring([Path(p).read_text(encoding="ascii") for p in public_keys] if public_keys
                           else AuditLog(store).keys())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--public-key") from None
        report = gather(store, start, end, keys, keys_from="files" if public_keys else "store", limit=max_items)
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(2)
    finally:
        store.close()
    try:
        _write(output, render(report) if fmt == "html" else to_json(report))
    except OSError as exc:
        click.echo(f"wardgate: cannot write {output}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    v, s = report.verification, report.summary
    if not public_keys:
        click.echo("note: checkpoint signatures were checked with the keys the store lists; pass --public-key with a "
                   "key you hold for proof that does not rest on the store", err=True)
    verdict = "verification OK" if v.ok else f"verification FAILED: {v.problems.total} problem(s)"
    click.echo(f"wrote {output} ({fmt}) in {time.monotonic() - began:.2f}s: {verdict}; {s.people} people, "
               f"{s.sessions} sessions, {s.statements} statements, {s.denied} denied, {s.review_requests} review "
               f"request(s), {s.auth_failures} failed login(s)", err=True)
    if s.audit_mismatches:
        click.echo(f"warning: {s.audit_mismatches} review(s) or grant(s) disagree with their chained events", err=True)
    sys.exit(0 if v.ok else 1)
