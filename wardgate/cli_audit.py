"""`wardgate audit verify` and `wardgate audit public-key`: the auditor's side of the hash-chained audit."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .audit.verify import keyring, verify_store
from .cli_common import _json, _load, _store, config_options
from .identity.keys import key_file, public_pem
from .store import StoreError
from .store.auditlog import AuditLog


def _iso(value: str | None, what: str) -> str | None:
    """A time bound as the chain writes times (UTC, ISO 8601): 2026-12-01 or 2026-12-01T10:00:00."""
    if value is None:
        return None
    from datetime import UTC, datetime

    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("a date or time: 2026-12-01 or 2026-12-01T10:00:00Z", param_hint=what) from None
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@click.command("verify")
@config_options
@click.option("--from", "since", default=None, help="Only entries at or after this time (UTC).")
@click.option("--to", "until", default=None, help="Only entries before this time (UTC).")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint public key (PEM) you hold; repeatable. Without one, the keys the store lists are "
                   "used, which proves only as much as the store itself.")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(config_path: str | None, store_url: str | None, since: str | None, until: str | None,
                 public_keys: tuple[str, ...], as_json: bool) -> None:
    """Walk every audit chain and its signed checkpoints; exit 1 naming each entry altered, removed, moved or
    inserted, and each checkpoint the chain no longer reaches."""
    store = _store(_load(config_path, store_url))
    try:
        keys = keyring([Path(p).read_text(encoding="ascii") for p in public_keys] if public_keys
                       else AuditLog(store).keys())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--public-key") from None
    try:
        report = verify_store(store, keys, _iso(since, "--from"), _iso(until, "--to"))
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(2)
    if as_json:
        _json({"ok": report.ok, "chains": report.chains, "entries": report.entries,
               "checkpoints": report.checkpoints, "unattested": report.unattested,
               "tables_checked": report.tables_checked, "uncovered": report.uncovered,
               "problems": [{"chain": p.chain, "seq": p.seq, "what": p.what, "detail": p.detail}
                            for p in report.problems],
               "keys": sorted(keys), "keys_from": "files" if public_keys else "store"})
    else:
        if not public_keys:
            click.echo("note: checking signatures with the keys the store lists; pass --public-key with a key you "
                       "hold for proof that does not rest on the store", err=True)
        for p in report.problems:
            click.echo(f"TAMPERED {p}")
        if report.uncovered:
            click.echo(f"note: {report.uncovered} table rows predate the audit chain and are not covered by it")
        if not report.tables_checked:
            click.echo("note: with --from/--to only the chain is checked, not the sessions, statements and events "
                       "tables")
        for chain, n in sorted(report.unattested.items()):
            click.echo(f"note: {n} entries of {chain} come after its last checkpoint (not yet signed)")
        verdict = "OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)"
        click.echo(f"{verdict}: {report.chains} chain(s), {report.entries} entries, "
                   f"{report.checkpoints} checkpoint(s) checked")
    sys.exit(0 if report.ok else 1)


@click.command("public-key")
@config_options
def audit_public_key(config_path: str | None, store_url: str | None) -> None:
    """Print the checkpoint public key (PEM), for auditors to keep and give to `audit verify --public-key`."""
    cfg = _load(config_path, store_url)
    path = cfg.audit_key_file()
    if not path.exists():
        click.echo(f"wardgate: no checkpoint key at {path} yet (the gateway creates it at its first start)", err=True)
        sys.exit(1)
    click.echo(public_pem(key_file(path)), nl=False)


@click.command("prune")
@config_options
@click.option("--before", default=None, help="Delete audit older than this time (UTC).")
@click.option("--older-than", default=None, help="Or: older than this long ago (90d, 12h); default audit.retention.")
def audit_prune(config_path: str | None, store_url: str | None, before: str | None, older_than: str | None) -> None:
    """Delete old audit: each chain up to its last signed checkpoint before the horizon (so what remains still
    verifies), and the table rows older than it; the prune is itself recorded."""
    import getpass

    from .audit.retention import prune, retention_cutoff
    from .config import parse_duration

    cfg = _load(config_path, store_url)
    if before is not None and older_than is not None:
        raise click.UsageError("give --before or --older-than, not both")
    if before is not None:
        horizon = _iso(before, "--before")
    else:
        try:
            seconds = parse_duration(older_than) if older_than is not None else cfg.audit.retention
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--older-than") from None
        if seconds is None:
            raise click.UsageError("nothing to prune by: give --before, --older-than or set audit.retention")
        horizon = retention_cutoff(seconds)
    assert horizon is not None
    store = _store(cfg)
    try:
        done = prune(store, horizon, getpass.getuser())
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(1)
    rows = ", ".join(f"{n} {t}" for t, n in done.rows.items())
    click.echo(f"pruned before {horizon}: {done.entries} chain entries of {len(done.chains)} chain(s) (each cut at "
               f"a signed checkpoint); rows: {rows}")


@click.command("export")
@config_options
@click.option("--from", "since", default=None, help="Records at or after this time (UTC).")
@click.option("--to", "until", default=None, help="Records before this time (UTC).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "ocsf"]), default="jsonl", show_default=True,
              help="jsonl: the records as JSON lines; csv: one fixed header; ocsf: one OCSF 1.3.0 event per record "
                   "(JSON lines), for SIEMs.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file (default: standard output).")
def audit_export(config_path: str | None, store_url: str | None, since: str | None, until: str | None, fmt: str,
                 output: str | None) -> None:
    """Every audit record in a time range, in time order: session starts and ends, statements (literals
    redacted, as recorded), events."""
    from datetime import datetime

    from .audit.export import records, write

    lo, hi = _iso(since, "--from"), _iso(until, "--to")
    start = datetime.fromisoformat(lo.replace("Z", "+00:00")) if lo else None
    end = datetime.fromisoformat(hi.replace("Z", "+00:00")) if hi else None
    store = _store(_load(config_path, store_url))
    try:
        if output is None:
            n = write(sys.stdout, fmt, records(store, start, end))
        else:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                n = write(fh, fmt, records(store, start, end))
    except StoreError as exc:
        click.echo(f"wardgate: {exc}", err=True)
        sys.exit(1)
    click.echo(f"exported {n} records", err=True)
