"""The hash-chained audit: a real gateway writes it, `wardgate audit verify` proves it, and every kind of
tampering with the SQLite or PostgreSQL store directly is found and named.

Each tampering runs on a copy of the store the gateway left (a file copy for SQLite, a database made from it as
a template for PostgreSQL), so the cases do not hide one another.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, text

from tests.conftest import ADMIN_DSN, PG_HOST, PG_PORT, WARDGATE, UpstreamDB, run_gateway, unique
from wardgate.audit.chain import entry_hash
from wardgate.store import Store
from wardgate.store.db import engine_url


def _exercise(upstream: UpstreamDB, tmp: Path, store_url: str) -> Path:
    """A gateway session with a few statements and a CLI event; returns the gateway's config path.

    The shipper appends one chain entry per store transaction. The first twelve statements are each let reach the
    store before the next runs, so each is an entry of its own and the tampering below is named per entry; the
    last four run back to back and usually share an entry, as statements do under load."""
    with run_gateway(tmp, upstream, store_url=store_url, extra={"audit": {"checkpoint_every": 5}}) as gw:
        with psycopg.connect(gw.dsn("ann", gw.token("ann", "dba"))) as conn:
            head = _gateway_head(store_url)
            for i in range(16):
                conn.execute(f"select {i}, 'statement {i}'")
                if i < 12:
                    head = _wait_shipped(store_url, head)
        gw.cli("service-account", "create", unique("agent"), "--groups", "eng")
        cfg = gw.config_path
    return cfg


def _gateway_head(url: str) -> int:
    rows = _query(url, "SELECT max(seq) FROM audit_heads WHERE chain <> 'cli'", {})
    return int(rows[0][0] or 0)


def _wait_shipped(url: str, after: int, timeout: float = 15.0) -> int:
    """The gateway chain's head once it has moved past ``after``."""
    deadline = time.monotonic() + timeout
    while (head := _gateway_head(url)) <= after:
        assert time.monotonic() < deadline, f"the gateway's chain stayed at #{after} for {timeout} s"
        time.sleep(0.02)
    return head


def _verify(cfg: Path, store_url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    res = subprocess.run([*WARDGATE, "audit", "verify", "-c", str(cfg), "--store", store_url, "--json", *extra],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode in (0, 1), res.stderr
    return res.returncode, json.loads(res.stdout)


def _query(url: str, q: str, params: dict[str, Any]) -> list[Any]:
    engine = create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(q), params))
    finally:
        engine.dispose()  # no connection may stay: PostgreSQL copies a database only when nobody is on it


def _gateway_chain(url: str) -> tuple[str, int]:
    ((chain, seq),) = _query(url, "SELECT chain, seq FROM audit_heads WHERE chain <> 'cli' ORDER BY seq DESC "
                                  "LIMIT 1", {})
    return str(chain), int(seq)


def _run(url: str, *statements: tuple[str, dict[str, Any]]) -> None:
    engine = create_engine(engine_url(url))
    try:
        with engine.begin() as conn:
            for q, params in statements:
                conn.execute(text(q), params)
    finally:
        engine.dispose()


def _rows(url: str, chain: str) -> list[Any]:
    return _query(url, "SELECT seq, at, prev, record, hash FROM audit_entries WHERE chain = :c ORDER BY seq",
                  {"c": chain})


def _alter(url: str, chain: str, seq: int) -> None:
    _run(url, ("UPDATE audit_entries SET record = replace(record, 'statement', 'STATEMENT') "
               "WHERE chain = :c AND seq = :s", {"c": chain, "s": seq}))


def _delete(url: str, chain: str, seq: int) -> None:
    _run(url, ("DELETE FROM audit_entries WHERE chain = :c AND seq = :s", {"c": chain, "s": seq}))


def _swap(url: str, chain: str, seq: int) -> None:
    _run(url, ("UPDATE audit_entries SET seq = -1 WHERE chain = :c AND seq = :s", {"c": chain, "s": seq}),
         ("UPDATE audit_entries SET seq = :s WHERE chain = :c AND seq = :t", {"c": chain, "s": seq, "t": seq + 1}),
         ("UPDATE audit_entries SET seq = :t WHERE chain = :c AND seq = -1", {"c": chain, "t": seq + 1}))


def _truncate(url: str, chain: str, seq: int) -> None:
    """Cut the tail and move the head back, so the rest is self-consistent: only a checkpoint can tell."""
    rows = _rows(url, chain)
    keep = [r for r in rows if r.seq < seq]
    _run(url, ("DELETE FROM audit_entries WHERE chain = :c AND seq >= :s", {"c": chain, "s": seq}),
         ("UPDATE audit_heads SET seq = :q, hash = :h WHERE chain = :c",
          {"c": chain, "q": keep[-1].seq, "h": keep[-1].hash}))


def _rewrite(url: str, chain: str, seq: int) -> None:
    """An attacker without the key: change one entry and recompute every hash after it, head included."""
    rows = _rows(url, chain)
    prev = rows[0].prev
    changes = []
    for r in rows:
        record = r.record.replace("statement", "STATEMENT") if r.seq == seq else r.record
        h = entry_hash(chain, r.seq, r.at, prev, record)
        changes.append(("UPDATE audit_entries SET prev = :p, record = :r, hash = :h WHERE chain = :c AND seq = :s",
                        {"p": prev, "r": record, "h": h, "c": chain, "s": r.seq}))
        prev = h
    changes.append(("UPDATE audit_heads SET hash = :h WHERE chain = :c", {"h": prev, "c": chain}))
    _run(url, *changes)


def _edit_statement(url: str, _chain: str, seq: int) -> None:
    """The table people read, not the chain: what `sessions show` would print is changed."""
    _run(url, ("UPDATE statements SET text = 'select 1' WHERE seq = :s", {"s": seq}))


def _edit_sample(url: str, _chain: str, _seq: int) -> None:
    """A result sample (chained by its digest) replaced by one that shows no rows."""
    _run(url, ("UPDATE statements SET result_sample = :s WHERE result_sample IS NOT NULL",
               {"s": '{"v":1,"rows":"","kept":0}'}))


def _forge_statement(url: str, _chain: str, _seq: int) -> None:
    _run(url, ("INSERT INTO statements (session_id, seq, started_at, protocol, kind, text, param_count, status) "
               "SELECT session_id, 999, started_at, protocol, kind, 'drop table evidence', 0, 'ok' FROM statements "
               "WHERE seq = 1", {}))


def _delete_event(url: str, _chain: str, _seq: int) -> None:
    _run(url, ("DELETE FROM events WHERE kind = 'service_account_created'", {}))


def _edit_session(url: str, _chain: str, _seq: int) -> None:
    _run(url, ("UPDATE sessions SET \"user\" = 'someone-else'", {}))


CASES: dict[str, tuple[Callable[[str, str, int], None], str, str | None]] = {
    "update a row": (_alter, "altered", None),
    "delete a row": (_delete, "removed", None),
    "swap two rows": (_swap, "moved", None),
    "truncate the tail after a checkpoint": (_truncate, "truncated", None),
    "rewrite the chain from a row on": (_rewrite, "altered", None),
    "edit a statement in its table": (_edit_statement, "altered", "statements"),
    "add a statement to its table": (_forge_statement, "inserted", "statements"),
    "edit a result sample in its table": (_edit_sample, "altered", "statements"),
    "delete an event from its table": (_delete_event, "removed", "events"),
    "edit a session in its table": (_edit_session, "altered", "sessions"),
}


def _check_all(cfg: Path, url: str, copy: Callable[[str], str]) -> None:
    code, report = _verify(cfg, url)
    assert code == 0 and report["ok"], report
    assert report["chains"] >= 2 and report["checkpoints"] >= 2 and report["unattested"] == {}, report
    key = cfg.parent / "audit.pub"
    key.write_text(subprocess.run([*WARDGATE, "audit", "public-key", "-c", str(cfg)], capture_output=True,
                                  text=True, check=True).stdout)
    assert _verify(cfg, url, "--public-key", str(key))[0] == 0
    chain, head = _gateway_chain(url)
    assert head >= 12
    for name, (tamper, what, table) in CASES.items():
        target = copy(name)
        tamper(target, chain, 4)
        code, report = _verify(cfg, target, "--public-key", str(key))
        assert code == 1, (name, report)
        found = [(p["what"], p["seq"]) for p in report["problems"] if p["chain"] == (table or chain)]
        assert any(w == what for w, _ in found), (name, report["problems"])
        if table is not None:
            assert report["tables_checked"] and report["uncovered"] == 0, report
        elif tamper is _rewrite:  # re-hashed: only the checkpoint after it can tell, and it names the range
            assert any("an entry in #1-#" in p["detail"] for p in report["problems"]), report
        elif what != "truncated":
            assert any(s in (4, 5) for _, s in found), (name, found)  # named where it happened
    other = cfg.parent / "other.pub"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, report = _verify(cfg, url, "--public-key", str(other))
    assert code == 1 and {p["what"] for p in report["problems"]} == {"unsigned"}


def test_sqlite_store_chain_and_tampering(upstream: UpstreamDB, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    cfg = _exercise(upstream, tmp_path / "gw", f"sqlite:///{db}")

    def copy(name: str) -> str:
        target = tmp_path / f"{name.replace(' ', '_')}.db"
        with sqlite3.connect(db) as src, sqlite3.connect(target) as dst:  # WAL mode: a file copy could miss rows
            src.backup(dst)
        return f"sqlite:///{target}"

    _check_all(cfg, f"sqlite:///{db}", copy)


@pytest.fixture
def pg_databases() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        for name in made:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_postgres_store_chain_and_tampering(upstream: UpstreamDB, tmp_path: Path, pg_databases: list[str]) -> None:
    name = unique("wgt_chain")
    pg_databases.append(name)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    cfg = _exercise(upstream, tmp_path / "gw", url)

    def copy(_case: str) -> str:
        target = unique("wgt_tamper")
        pg_databases.append(target)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            # a template must have no session: end the pooled ones this test's helpers left (the token store's)
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                          "AND pid <> pg_backend_pid()", (name,))
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(target),
                                                                          sql.Identifier(name)))
        return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{target}"

    _check_all(cfg, url, copy)


def test_configuration_changes_are_on_the_record(upstream: UpstreamDB, tmp_path: Path) -> None:
    """Each gateway start records its configuration (secrets as references only) and what changed since the last."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    secret = "s3cret-" + unique("pw")
    env = {"WG_TEST_MASK_KEY": secret}
    first = {"masking": {"hash_key": "env:WG_TEST_MASK_KEY"}}
    with run_gateway(tmp_path / "a", upstream, store_url=store_url, extra=first, env=env):
        pass
    rule = {"name": "no-truncate-here", "action": "deny", "when": {"kinds": ["truncate"]}}
    with run_gateway(tmp_path / "b", upstream, store_url=store_url, extra={**first, "rules": [rule]}, env=env):
        pass
    events = Store(store_url).events(kind="config_loaded")  # read once the gateway has shipped all and stopped
    assert len(events) == 2
    latest, earlier = events
    assert earlier["detail"]["previous_sha256"] is None and earlier["detail"]["changed_sections"] is None
    assert latest["detail"]["previous_sha256"] == earlier["detail"]["sha256"]
    assert "rules" in latest["detail"]["changed_sections"] and "masking" not in latest["detail"]["changed_sections"]
    assert latest["detail"]["config"]["rules"][0]["name"] == "no-truncate-here"
    assert latest["detail"]["config"]["masking"]["hash_key"] == "env:WG_TEST_MASK_KEY"
    with create_engine(engine_url(store_url)).connect() as conn:
        for table in ("events", "audit_entries"):
            assert secret not in repr(conn.execute(text(f"SELECT * FROM {table}")).fetchall())


def test_retention_prunes_signed_ranges_and_what_remains_verifies(upstream: UpstreamDB, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    extra = {"audit": {"checkpoint_every": 1, "checkpoint_interval": "1s"}}
    with run_gateway(tmp_path / "gw", upstream, store_url=url, extra=extra) as gw:
        token = gw.token("old", "dba")
        with psycopg.connect(gw.dsn("old", token)) as conn:
            conn.execute("select 'old work'")
        time.sleep(1.2)
        horizon = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        time.sleep(0.2)
        with psycopg.connect(gw.dsn("new", gw.token("new", "dba"))) as conn:
            conn.execute("select 'new work'")
        cfg = gw.config_path
    before = _verify(cfg, url)[1]
    out = subprocess.run([*WARDGATE, "audit", "prune", "-c", str(cfg), "--store", url, "--before", horizon],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "pruned before" in out.stdout, out.stderr
    code, after = _verify(cfg, url)
    assert code == 0 and after["ok"], after
    # the old work's entries went (the prune's own event is one more, on the cli chain)
    assert after["entries"] - 1 < before["entries"]
    (first_seq,) = _query(url, "SELECT first_seq FROM audit_heads WHERE chain <> 'cli'", {})[0]
    assert first_seq > 1
    store = Store(url)
    assert [s["user"] for s in store.sessions()] == ["new"]  # the old session went with its records
    assert store.events(kind="audit_pruned")[0]["detail"]["before"] == horizon
    _run(url, ("UPDATE statements SET kind = 'delete'", {}))  # the newer statements, which remain
    code, tampered = _verify(cfg, url)
    assert code == 1 and any(p["chain"] == "statements" for p in tampered["problems"]), tampered


def test_export_jsonl_and_csv_in_time_order(upstream: UpstreamDB, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    cfg = _exercise(upstream, tmp_path / "gw", url)

    def export(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*WARDGATE, "audit", "export", "-c", str(cfg), "--store", url, *args],
                              capture_output=True, text=True, timeout=60)

    res = export("--format", "jsonl")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    types = [r["type"] for r in lines]
    texts = [r.get("statement") for r in lines if r["type"] == "statement"]
    assert texts.count("select $1, $2") == 16 and "BEGIN" in texts  # psycopg opens a transaction first
    assert "session_start" in types and "session_end" in types
    assert "config_loaded" in types and "service_account_created" in types
    assert [r["time"] for r in lines] == sorted(r["time"] for r in lines)
    start = types.index("session_start")
    first_stmt = types.index("statement") + 1  # after the BEGIN
    assert start < first_stmt < types.index("session_end")
    stmt = lines[first_stmt]
    assert stmt["user"] == "ann" and stmt["connection"] == "app" and "$1" in stmt["statement"]  # redacted literals
    assert json.loads(stmt["groups"]) == ["dba"] and stmt["issuer"] == "wardgate"  # who the decision was for
    assert "statement 0" not in res.stdout  # the literals never leave the store (they were never in it)
    res = export("--format", "csv", "--from", lines[first_stmt]["time"], "-o", str(tmp_path / "a.csv"))
    assert res.returncode == 0 and "exported" in res.stderr
    import csv

    rows = list(csv.DictReader((tmp_path / "a.csv").open()))
    assert rows[0]["type"] == "statement" and len([r for r in rows if r["statement"] == "select $1, $2"]) == 16
    assert export("--from", "yesterday").returncode == 2  # a bad time is a usage error, not a traceback


def test_a_whole_chain_deleted_is_noticed_by_a_later_start(upstream: UpstreamDB, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    cfg = _exercise(upstream, tmp_path / "gw1", url)
    first, _ = _gateway_chain(url)
    with run_gateway(tmp_path / "gw2", upstream, store_url=url):
        pass  # its config_loaded event records the first gateway's chain head
    assert _verify(cfg, url)[0] == 0
    _run(url, ("DELETE FROM audit_entries WHERE chain = :c", {"c": first}),
         ("DELETE FROM audit_checkpoints WHERE chain = :c", {"c": first}),
         ("DELETE FROM audit_heads WHERE chain = :c", {"c": first}))
    code, report = _verify(cfg, url)
    assert code == 1
    assert any(p["chain"] == first and p["what"] == "removed" and "whole chain is gone" in p["detail"]
               for p in report["problems"]), report["problems"]


# What OCSF 1.3.0 requires of every event, and of the classes a gateway session produces (base_event with
# includes/classification.json and occurrence.json; datastore_activity.json; authentication.json)
OCSF_REQUIRED = {"activity_id", "category_uid", "class_uid", "type_uid", "time", "severity_id", "metadata"}
OCSF_CLASS_REQUIRED = {6005: {"actor", "src_endpoint"}, 3002: {"user"}, 6002: {"app"}}


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_export_ocsf_for_a_siem(upstream: UpstreamDB, tmp_path: Path) -> None:
    """`audit export --format ocsf`: a real session's statements come out as OCSF Datastore Activity events with
    the text as recorded (literals redacted), the policy's refusal as a denied action, a refused login as an
    Authentication failure; no literal and no token is in the output."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    literal = unique("hunter2")
    rule = {"name": "no-deletes-here", "action": "deny", "when": {"kinds": ["delete"]}}
    bad_token = unique("eyJnot-a-token")
    with run_gateway(tmp_path / "gw", upstream, store_url=url, extra={"rules": [rule]}) as gw:
        token = gw.token("ann", "dba")
        with psycopg.connect(gw.dsn("ann", token), autocommit=True) as conn:
            conn.execute(f"select '{literal}' as secret, 42")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-deletes-here"):
                conn.execute(f"delete from customers where email = '{literal}@example.com'")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(gw.dsn("mallory", bad_token)).close()
        cfg = gw.config_path
    res = subprocess.run([*WARDGATE, "audit", "export", "-c", str(cfg), "--store", url, "--format", "ocsf"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert literal not in res.stdout and token not in res.stdout and bad_token not in res.stdout
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.stderr.strip().endswith(f"exported {len(events)} records")
    for e in events:
        missing = OCSF_REQUIRED | OCSF_CLASS_REQUIRED.get(e["class_uid"], set())
        assert missing - set(e) == set(), e
        assert e["metadata"]["version"] == "1.3.0" and e["type_uid"] == e["class_uid"] * 100 + e["activity_id"]
        assert None not in _leaves(e), e  # an attribute without a value is left out, never null
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    statements = [e for e in events if e["metadata"]["event_code"] == "statement"]
    assert all(e["class_uid"] == 6005 and e["database"]["name"] == "app" for e in statements)
    select = next(e for e in statements if e["unmapped"]["kind"] == "select")
    assert select["query_info"]["query_string"] == "select $1 as secret, $2"
    assert (select["activity_name"], select["status_id"], select["action_id"]) == ("Query", 1, 1)
    assert select["actor"]["user"] == {"name": "ann", "groups": [{"name": "dba"}]}
    assert select["src_endpoint"]["ip"] == "127.0.0.1"  # from its session's start
    delete = next(e for e in statements if e["unmapped"]["kind"] == "delete")
    assert delete["query_info"]["query_string"] == "delete from customers where email = $1"
    assert (delete["activity_name"], delete["status_id"], delete["action_id"], delete["disposition"]) == \
        ("Delete", 2, 2, "Blocked")
    assert (delete["status_code"], delete["unmapped"]["rule"]) == ("42501", "no-deletes-here")
    start = next(e for e in events if e["metadata"]["event_code"] == "session_start")
    assert (start["type_uid"], start["actor"]["session"]["uid"]) == (600503, select["actor"]["session"]["uid"])
    end = next(e for e in events if e["metadata"]["event_code"] == "session_end")
    assert (end["type_uid"], end["activity_name"]) == (600599, "Disconnect")
    refused = next(e for e in events if e["metadata"]["event_code"] == "auth_failed")
    assert (refused["type_uid"], refused["status_id"], refused["user"]["name"]) == (300201, 2, "mallory")
    assert any(e["type_uid"] == 600203 for e in events)  # the gateway's start (config_loaded)
