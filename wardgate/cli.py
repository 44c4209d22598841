"""The `wardgate` command. Every command that touches the store takes the same ``-c FILE`` and ``--store URL``."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import click

from .cli_access import access
from .cli_accounts import service_account
from .cli_audit import audit_export, audit_prune, audit_public_key, audit_verify
from .cli_common import _json, _load, _store, _table, _ts, config_options
from .cli_connect import connect
from .cli_evidence import evidence
from .cli_exec import exec_
from .cli_login import login, logout, whoami
from .cli_replay import sessions_replay
from .cli_reviews import reviews
from .config import Config, parse_duration
from .store import Store


@click.group()
@click.version_option(package_name="wardgate")
def main() -> None:
    """wardgate: an access gateway for production databases."""


main.add_command(reviews)
main.add_command(exec_)
main.add_command(access)
main.add_command(service_account)
main.add_command(login)
main.add_command(logout)
main.add_command(whoami)
main.add_command(connect)
main.add_command(evidence)


@main.command()
@config_options
@click.option(
    "--listen-postgres",
    envvar="WARDGATE_LISTEN_POSTGRES",
    metavar="HOST:PORT",
    help="Where PostgreSQL clients connect; overrides the file.",
)
@click.option(
    "--log-level",
    envvar="WARDGATE_LOG_LEVEL",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(config_path: str | None, store_url: str | None, listen_postgres: str | None, log_level: str) -> None:
    """Validate the configuration, migrate the store and run the gateway."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = _load(config_path, store_url, listen_postgres)
    store = _store(config)
    from .server import run

    try:
        run(config, store)
    except OSError as exc:
        click.echo(f"wardgate: cannot listen on {config.listen.postgres}: {exc.strerror or exc}", err=True)
        sys.exit(1)


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@config_options
def config_check(config_path: str | None, store_url: str | None) -> None:
    """Validate the configuration file and say what it defines."""
    cfg = _load(config_path, store_url)
    click.echo(
        f"ok: {len(cfg.connections)} connection(s), store {Store(cfg.store).describe()}, "
        f"postgres listener {cfg.listen.postgres}"
    )


@main.group()
def connections() -> None:
    """The databases users reach through the gateway."""


@connections.command("list")
@config_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def connections_list(config_path: str | None, store_url: str | None, as_json: bool) -> None:
    """List the configured connections (never their secrets)."""
    cfg = _load(config_path, store_url)
    items: list[dict[str, Any]] = [
        {
            "name": name,
            "type": c.type,
            "host": c.host,
            "port": c.port,
            "database": c.database,
            "user": c.user,
            "sslmode": c.sslmode,
            "password": str(c.password) if c.password else None,
            "allow_groups": c.allow_groups,
            "read_only": c.read_only,
            "description": c.description,
        }
        for name, c in cfg.connections.items()
    ]
    if as_json:
        _json(items)
        return
    _table(
        ["NAME", "TYPE", "UPSTREAM", "SSLMODE", "PASSWORD", "ALLOW GROUPS", "ACCESS"],
        [
            [
                i["name"],
                i["type"],
                f"{i['user']}@{i['host']}:{i['port']}/{i['database']}",
                i["sslmode"],
                i["password"] or "-",
                ",".join(i["allow_groups"]) or "(any)",
                "read-only" if i["read_only"] else "read-write",
            ]
            for i in items
        ],
    )


@main.group()
def token() -> None:
    """Gateway-issued tokens for people, services and agents."""


@token.command("create")
@config_options
@click.option("--user", default=None, help="The identity the token stands for (the user name clients give).")
@click.option("--groups", default="", help="Comma-separated groups (with --user).")
@click.option("--service-account", "account_name", default=None,
              help="Issue the token to this service account (its groups apply; see wardgate service-account).")
@click.option("--ttl", default=None, help="Lifetime, e.g. 30m, 1h, 7d (default: identity.tokens.default_ttl).")
@click.option("--json", "as_json", is_flag=True, help="Print id, token and expiry as JSON.")
def token_create(
    config_path: str | None, store_url: str | None, user: str | None, groups: str, account_name: str | None,
    ttl: str | None, as_json: bool
) -> None:
    """Issue a signed token; it is printed once, and only its SHA-256 is stored."""
    if (user is None) == (account_name is None):
        raise click.UsageError("give --user NAME (a person) or --service-account NAME")
    if account_name is not None and groups:
        raise click.UsageError("a service account's groups are the account's: wardgate service-account set-groups")
    cfg = _load(config_path, store_url)
    try:
        seconds = parse_duration(ttl) if ttl is not None else cfg.identity.tokens.default_ttl
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    if seconds > cfg.identity.tokens.max_ttl:
        raise click.BadParameter(
            f"longer than identity.tokens.max_ttl ({cfg.identity.tokens.max_ttl:g}s)", param_hint="--ttl"
        )
    from .server import token_service
    from .store.accounts import ServiceAccounts

    store = _store(cfg)
    import getpass

    account = None
    if account_name is not None:
        account = ServiceAccounts(store).get(account_name)
        if account is None:
            raise click.BadParameter(f"no service account {account_name!r} (wardgate service-account create)",
                                     param_hint="--service-account")
    try:
        issued = token_service(cfg, store).create(user or "", groups.split(","), seconds, getpass.getuser(),
                                                  account)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--service-account" if account else "--user") from None
    if as_json:
        _json(
            {
                "id": issued.id,
                "token": issued.token,
                "user": issued.subject,
                "groups": list(issued.groups),
                "service_account": issued.account,
                "expires_at": issued.expires_at,
            }
        )
        return
    click.echo(
        f"token {issued.id} for {issued.subject} (groups: {','.join(issued.groups) or '-'}), "
        f"expires {_ts(issued.expires_at)} UTC",
        err=True,
    )
    click.echo(issued.token)


@token.command("revoke")
@config_options
@click.argument("token_id")
def token_revoke(config_path: str | None, store_url: str | None, token_id: str) -> None:
    """Revoke a token by its id; new sessions with it are refused at once."""
    store = _store(_load(config_path, store_url))
    if not store.revoke_token(token_id):
        known = store.token(token_id)
        click.echo(f"wardgate: token {token_id} " + ("is already revoked" if known else "does not exist"), err=True)
        sys.exit(1)
    click.echo(f"revoked {token_id}")


@token.command("list")
@config_options
@click.option("--user", default=None)
@click.option("--json", "as_json", is_flag=True)
def token_list(config_path: str | None, store_url: str | None, user: str | None, as_json: bool) -> None:
    """List issued tokens (ids and metadata; the tokens themselves are never stored)."""
    rows = _store(_load(config_path, store_url)).tokens(user)
    for r in rows:
        r.pop("token_hash", None)  # not a secret, but nothing a reader needs
    if as_json:
        _json(rows)
        return
    now = datetime.now(UTC)
    _table(
        ["ID", "USER", "GROUPS", "CREATED", "EXPIRES", "STATE"],
        [
            [
                r["id"],
                r["subject"],
                f"(account {r['account']})" if r["account"] else ",".join(r["groups"]) or "-",
                _ts(r["created_at"]),
                _ts(r["expires_at"]),
                "revoked" if r["revoked_at"] else ("expired" if r["expires_at"] < now else "active"),
            ]
            for r in rows
        ],
    )


@main.group()
def sessions() -> None:
    """Recorded sessions and their statements."""


@sessions.command("list")
@config_options
@click.option("--user", default=None)
@click.option("--connection", default=None)
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def sessions_list(
    config_path: str | None,
    store_url: str | None,
    user: str | None,
    connection: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The most recent sessions first."""
    rows = _store(_load(config_path, store_url)).sessions(limit, user, connection)
    if as_json:
        _json(rows)
        return
    _table(
        ["ID", "STARTED (UTC)", "USER", "CONNECTION", "CLIENT", "APPLICATION", "STMTS", "ENDED", "REASON"],
        [
            [
                r["id"][:8],
                _ts(r["started_at"]),
                r["user"],
                r["connection"],
                r["client_addr"],
                r["application_name"] or "-",
                str(r["statements"]),
                _ts(r["ended_at"]) if r["ended_at"] else "open",
                r["end_reason"] or "",
            ]
            for r in rows
        ],
    )


@sessions.command("show")
@config_options
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True)
def sessions_show(config_path: str | None, store_url: str | None, session_id: str, as_json: bool) -> None:
    """One session (by id or unique id prefix) with every statement it ran."""
    store = _store(_load(config_path, store_url))
    row = store.session(session_id)
    if row is None:
        click.echo(f"wardgate: no single session matches {session_id!r}", err=True)
        sys.exit(1)
    stmts = store.statements(row["id"])
    if as_json:
        _json({**row, "statements": stmts})
        return
    click.echo(f"session     {row['id']}")
    click.echo(
        f"user        {row['user']} (groups: {','.join(row['groups']) or '-'}; via {row['auth_method']}"
        + (f" {row['token_id']})" if row["token_id"] else ")")
    )
    if row.get("issuer"):
        click.echo(f"identity    {row['idp_subject'] or '-'} at {row['issuer']}")
    click.echo(f"connection  {row['connection']} ({row['protocol']}) through {row['gateway']}")
    click.echo(f"client      {row['client_addr']} {row['application_name'] or ''}".rstrip())
    click.echo(f"started     {_ts(row['started_at'])} UTC")
    click.echo(
        f"ended       {_ts(row['ended_at']) + ' UTC' if row['ended_at'] else 'still open'}"
        + (f" ({row['end_reason']})" if row["end_reason"] else "")
    )
    click.echo(f"bytes       {row['bytes_from_client']} from client, {row['bytes_to_client']} to client")
    if row.get("masking"):
        m = json.loads(row["masking"])
        click.echo(f"masking     rules: {', '.join(m['rules']) or '-'}"
                   + (f"; exempt from: {', '.join(m['exempt'])}" if m["exempt"] else ""))
    click.echo("")
    _table(
        ["#", "TIME (UTC)", "KIND", "STATUS", "RULE", "RESULT", "MS", "MASKED", "STATEMENT"],
        [
            [
                str(s["seq"]),
                _ts(s["started_at"]),
                s["kind"],
                s["status"],
                "-" if s["rule"] in (None, "default") else f"{s['rule']} ({s['decision']})",
                (
                    f"{s['sqlstate']} {s['reason'] or s['error_message'] or ''}"
                    if s["status"] == "denied"
                    else f"{s['sqlstate']} {s['error_message'] or ''}"
                    if s["sqlstate"]
                    else (s["command_tag"] or "")
                    + (
                        f" ({s['row_count']} rows)"
                        if s["row_count"] is not None and s["command_tag"] and " " not in s["command_tag"]
                        else ""
                    )
                ),
                f"{s['duration_ms']:.1f}" if s["duration_ms"] is not None else "-",
                _masked_summary(s.get("masked")),
                " ".join((s["text"] or "<unreadable>").split())[:120],
            ]
            for s in stmts
        ],
    )


sessions.add_command(sessions_replay)


def _masked_summary(masked: str | None) -> str:
    """``email 3, notes:phone 1``: values masked per column (and detector, when a detector found them)."""
    if not masked:
        return "-"
    parts = []
    for m in json.loads(masked):
        column = m["column"].rsplit(".", 1)[-1]
        what = column if m["detector"] == "column" else f"{column}:{m['detector']}"
        parts.append(f"{what} {m['values']}")
    return ", ".join(parts)


@main.group()
def audit() -> None:
    """Audit events that belong to no session (failed logins, refused connections)."""


audit.add_command(audit_verify)
audit.add_command(audit_public_key)
audit.add_command(audit_prune)
audit.add_command(audit_export)


@audit.command("events")
@config_options
@click.option("--kind", default=None, help="Only events of this kind (auth_failed, connection_refused).")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def audit_events(config_path: str | None, store_url: str | None, kind: str | None, limit: int, as_json: bool) -> None:
    """The most recent events first."""
    rows = _store(_load(config_path, store_url)).events(kind, limit)
    if as_json:
        _json(rows)
        return
    _table(
        ["TIME (UTC)", "KIND", "USER", "CONNECTION", "CLIENT", "DETAIL"],
        [
            [
                _ts(r["at"]),
                r["kind"],
                r["subject"] or "-",
                r["connection"] or "-",
                r["client_addr"] or "-",
                json.dumps(r["detail"], sort_keys=True),
            ]
            for r in rows
        ],
    )


@main.group()
def policy() -> None:
    """Check what the policy decides, without a database."""


@policy.command("check")
@config_options
@click.option("--connection", required=True, help="The connection the statement would run on.")
@click.option("--user", default="policy-check", show_default=True, help="The user (for the record only).")
@click.option("--groups", default="", help="Comma-separated groups of the user.")
@click.option("--sql", "text", required=True, help="The query string, as a client would send it.")
@click.option("--prepared", multiple=True, metavar="NAME=SQL",
              help="A statement the session has prepared (for EXECUTE NAME); repeatable.")
@click.option("--explain", is_flag=True, help="Also show every rule in scope and whether it matched.")
@click.option("--no-describe", is_flag=True,
              help="Do not ask the upstream to describe the result columns (masking is then not shown).")
@click.option("--json", "as_json", is_flag=True)
def policy_check(
    config_path: str | None,
    store_url: str | None,
    connection: str,
    user: str,
    groups: str,
    text: str,
    prepared: tuple[str, ...],
    explain: bool,
    no_describe: bool,
    as_json: bool,
) -> None:
    """Print the decision for a query string, the rule that made it, how each statement was classified, and
    which result columns would be masked (the upstream describes the statement without running it).

    Exit status: 0 allowed, 1 denied, 3 held for review (2: bad usage or configuration).
    """
    from .policy.decide import decide_message, refused
    from .policy.rules import Policy
    from .policy.sql import classify

    cfg = _load(config_path, store_url)
    if connection not in cfg.connections:
        click.echo(f'wardgate: connection "{connection}" is not in the configuration', err=True)
        sys.exit(2)
    names: dict[str, str] = {}
    for p in prepared:
        name, sep, body = p.partition("=")
        if not sep or not name.strip():
            click.echo(f"wardgate: --prepared wants NAME=SQL, got {p!r}", err=True)
            sys.exit(2)
        names[name.strip()] = body
    group_list = [g.strip() for g in groups.split(",") if g.strip()]
    rules = Policy(cfg).scope(connection, group_list)
    infos = classify(text)
    decisions = decide_message(rules, infos, names)
    bad = refused(decisions)
    verdict = decisions[bad][0] if bad >= 0 else (decisions[0][0] if decisions else None)
    action = verdict.action if verdict else "allow"
    statements = []
    for info, (decision, target) in zip(infos, decisions, strict=True):
        entry: dict[str, Any] = {
            "text": info.redacted,
            "kind": info.kind,
            "kinds": sorted(target.kinds),
            "reads": list(target.reads),
            "writes_to": list(target.writes_to),
            "functions": list(target.functions),
            "writes": target.writes,
            "unbounded": sorted(target.unbounded),
            "decision": decision.action,
            "rule": decision.rule,
            "reason": decision.reason,
        }
        if info.error:
            entry["parse_error"] = info.error
        if target is not info:
            entry["runs"] = target.redacted
        if explain:
            entry["rules"] = [
                {"rule": r.name, "action": r.action, "matched": r.match.matches(target)} for r in rules.rules
            ]
        statements.append(entry)
    masking = None if no_describe else _masking_of(cfg, connection, group_list, text, infos, decisions)

    result: dict[str, Any] = {
        "connection": connection,
        "user": user,
        "groups": group_list,
        "decision": action,
        "rule": verdict.rule if verdict else "default",
        "reason": verdict.reason if verdict else "empty query",
        "statement": bad + 1 if bad >= 0 else None,
        "statements": statements,
    }
    if masking is not None:
        result["masking"] = masking
    if as_json:
        _json(result)
    else:
        click.echo(f"decision: {action}")
        click.echo(f"rule: {result['rule']}")
        click.echo(f"reason: {result['reason']}")
        if bad >= 0 and len(infos) > 1:
            click.echo(f"decided by statement {bad + 1} of {len(infos)}; nothing of the message would run")
        for i, st in enumerate(statements, 1):
            click.echo(f"\nstatement {i}: {st['text']}")
            if "runs" in st:
                click.echo(f"  runs: {st['runs']}")
            click.echo(f"  kind: {st['kind']} ({', '.join(st['kinds'])})")
            for key in ("reads", "writes_to", "functions", "unbounded"):
                if st[key]:
                    click.echo(f"  {key}: {', '.join(st[key])}")
            click.echo(f"  writes: {'yes' if st['writes'] else 'no'}")
            if "parse_error" in st:
                click.echo(f"  parse error: {st['parse_error']}")
            click.echo(f"  decision: {st['decision']} (rule {st['rule']}: {st['reason']})")
            for r in st.get("rules", []):
                mark = "matches" if r["matched"] else "-"
                click.echo(f"    {r['action']:6} {r['rule']:28} {mark}")
        if masking is not None:
            _echo_masking(masking)
    sys.exit({"allow": 0, "deny": 1, "review": 3}[action])


def _masking_of(cfg: Config, connection: str, groups: list[str], text: str, infos: Any,
                decisions: Any) -> dict[str, Any] | None:
    """Which result columns the gateway would mask for this session, and why: the upstream describes the
    statement (prepared, never run) and the catalog names its columns, as the gateway would."""
    import asyncio

    import psycopg

    from .pipeline import masking_policy

    masking, exempt = masking_policy(cfg).for_session(connection, groups)
    out: dict[str, Any] = {"rules": [r.name for r in masking.rules] if masking else [], "exempt": list(exempt)}
    if masking is None or len(infos) != 1 or not decisions[0][0].allowed:
        return out
    from .catalog import Catalog, CatalogUnavailable, connect_params
    from .masking.results import Column, Kind, ResultPlan
    from .protocols.postgres.types import column_kind

    conn = cfg.connections[connection]
    try:
        with psycopg.connect(**connect_params(conn, "wardgate-policy-check", conn.connect_timeout)) as db:
            pg = db.pgconn
            prepared = pg.prepare(b"", text.encode())
            if prepared.status != psycopg.pq.ExecStatus.COMMAND_OK:
                out["error"] = (prepared.error_message or b"").decode(errors="replace").strip()
                return out
            d = pg.describe_prepared(b"")
            fields = [(d.fname(i) or b"").decode(errors="replace") for i in range(d.nfields)]
            origins = [(d.ftable(i), d.ftablecol(i), d.ftype(i)) for i in range(d.nfields)]
    except psycopg.Error as exc:
        out["error"] = f'cannot describe the statement on connection "{connection}": {str(exc).strip()}'
        return out
    catalog = Catalog(conn, connection, cfg.masking.catalog_ttl)

    async def names() -> list[Any]:
        try:
            await catalog.load({t for t, _, _ in origins if t})
            return [catalog.names(t, a) or () for t, a, _ in origins]
        finally:
            await catalog.close()

    try:
        resolved = asyncio.run(names())
    except CatalogUnavailable as exc:
        out["error"] = str(exc)
        return out
    columns = [Column(n, tuple(r), bool(t), Kind(column_kind(ty, False)))
               for n, r, (t, _, ty) in zip(fields, resolved, origins, strict=True)]
    plan = ResultPlan(masking, columns)
    out["columns"] = [{"column": c, "rule": r, "masked": how} for c, r, how in plan.marked()]
    out["scanned"] = plan.scanned()
    out["detectors"] = list(masking.styles)
    return out


def _echo_masking(m: dict[str, Any]) -> None:
    click.echo("\nmasking:")
    click.echo(f"  rules: {', '.join(m['rules']) or '(none)'}" + (f"; exempt from: {', '.join(m['exempt'])}"
                                                                    if m["exempt"] else ""))
    if "error" in m:
        click.echo(f"  result columns: unknown ({m['error']})")
        return
    for c in m.get("columns", []):
        click.echo(f"  {c['column']}: {c['masked']} by rule {c['rule']}")
    if m.get("scanned"):
        click.echo(f"  scanned by detectors ({', '.join(m['detectors'])}): {', '.join(m['scanned'])}")


@main.group()
def mask() -> None:
    """Try the masking detectors and styles on a value."""


@mask.command("test")
@click.option("--detector", "detectors", multiple=True, metavar="NAME",
              help="A built-in detector (repeatable); all of them when omitted.")
@click.option("--style", type=click.Choice(["partial", "full", "hash", "null"]), default="partial",
              show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.argument("text")
def mask_test(detectors: tuple[str, ...], style: str, as_json: bool, text: str) -> None:
    """Show what the detectors find in TEXT and what it becomes. Exit 0 when something was found, 1 when not."""
    import secrets as _secrets

    from .masking import BUILTIN_DETECTORS, Scanner, mask_text

    unknown = [d for d in detectors if d not in BUILTIN_DETECTORS]
    if unknown:
        click.echo(f"wardgate: no detector named {', '.join(unknown)} (detectors: {', '.join(BUILTIN_DETECTORS)})",
                   err=True)
        sys.exit(2)
    scanner = Scanner.builtin(*detectors)
    value = text.encode("utf-8")
    found = scanner.find(value)
    # hash tokens depend on the gateway's key; a throwaway key shows their shape without revealing it
    masked, counts = mask_text(value, scanner, style, key=_secrets.token_bytes(32))
    matches = [{"detector": m.detector, "start": m.start, "end": m.end,
                "value": value[m.start:m.end].decode("utf-8", "replace")} for m in found]
    result: dict[str, Any] = {
        "matches": matches,
        "masked": None if masked is None else masked.decode("utf-8", "replace"),
        "counts": dict(counts),
        "style": style,
    }
    if as_json:
        _json(result)
    else:
        for m in matches:
            click.echo(f"{m['detector']:16} {m['start']:>5}-{m['end']:<5} {m['value']}")
        if not found:
            click.echo("no match")
        click.echo(f"masked ({style}): {'NULL' if masked is None else result['masked']}")
        if style == "hash":
            click.echo("(hash tokens made with a throwaway key: the gateway's differ)")
    sys.exit(0 if found else 1)


@main.group()
def demo() -> None:
    """The demo dataset behind examples/demo.yaml."""


@demo.command("load")
@click.option(
    "--dsn",
    default="host=127.0.0.1 port=5432 dbname=postgres user=postgres",
    show_default=True,
    help="An administrative connection to the local PostgreSQL.",
)
@click.option("--database", default="wardgate_demo", show_default=True)
@click.option("--role", default="wardgate_demo", show_default=True)
def demo_load(dsn: str, database: str, role: str) -> None:
    """Create (or re-create) the demo database, its role and its customers, emails and card numbers."""
    from .demo import load

    try:
        counts = load(dsn, database, role)
    except Exception as exc:
        click.echo(f"wardgate: cannot load the demo dataset: {exc}", err=True)
        sys.exit(1)
    click.echo(f"demo database {database} ready (role {role}): " + ", ".join(f"{n} {t}" for t, n in counts.items()))


if __name__ == "__main__":
    main()
