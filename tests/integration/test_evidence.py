"""`wardgate evidence` over what a real gateway recorded: people who ran allowed, masked, denied and reviewed
statements, a failed login, a just-in-time grant, a service account and a configuration change; the report, in
both formats, must say exactly that, name who decided what, never carry a literal or a token, escape the
statement text in HTML, and turn to FAILED (exit 1, report still written) once a statement row is tampered with.

The main scenario runs on a SQLite store (one module-scoped run shared by the tests that read its reports); a
shorter one checks the PostgreSQL store, whose SQL (JSON aggregation of masking, time buckets) differs.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_HOST, PG_PORT, WARDGATE, Gateway, UpstreamDB, flush_wait, run_gateway
from wardgate.store import Store
from wardgate.store.db import engine_url
from wardgate.store.grants import GrantStore
from wardgate.store.reviews import Review, ReviewStore

LITERAL = "lit-secret-4711"  # in statements' literals: recorded as $n, so never in a report
SCRIPT = "<script>alert(1)</script>"  # a quoted identifier: it survives redaction, so the HTML must escape it
RULES = [{"name": "orders-need-review", "action": "review", "reason": "orders are money",
          "when": {"kinds": ["update", "delete"], "tables": ["ev_orders"]},
          "review": {"approvers": ["sre"], "expires_after": "60s", "notice_interval": "1s"}}]
MASKING = {"rules": [{"name": "people-pii", "columns": ["ev_people.email"], "style": "partial"}]}
TOP_KEYS = ["format", "period", "summary", "verification", "access", "denials", "reviews", "masking", "jit_access",
            "auth_failures", "config_changes", "admin_changes", "activity"]


@dataclass
class Run:
    """What the scenario did, for the tests to find in the reports."""

    config: Path
    store_url: str
    public_key: Path
    since: str
    until: str
    tokens: list[str] = field(default_factory=list)  # every credential used: none may appear in a report
    approved: str = ""
    denied: str = ""
    grant: str = ""
    config_sha: list[str] = field(default_factory=list)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tables(upstream: UpstreamDB) -> None:
    with upstream.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ev_people (id int PRIMARY KEY, name text, email text)")
        conn.execute("INSERT INTO ev_people VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bo', 'bo@example.com'), "
                     "(3, 'Cy', 'cy@example.com') ON CONFLICT (id) DO NOTHING")
        conn.execute("CREATE TABLE IF NOT EXISTS ev_orders (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO ev_orders VALUES (1, 'a'), (2, 'b') ON CONFLICT (id) DO NOTHING")


def _ann(gw: Gateway, run: Run) -> None:
    """Three allowed statements (one of them masked: three emails) and two denied by the built-in pack."""
    token = gw.token("ann", "eng")
    run.tokens.append(token)
    with psycopg.connect(gw.dsn("ann", token), autocommit=True) as conn:
        conn.execute(f"SELECT id FROM ev_people WHERE name = '{LITERAL}'")
        emails = [r[1] for r in conn.execute("SELECT id, email FROM ev_people ORDER BY id").fetchall()]
        assert emails and all("example.com" not in e for e in emails), emails  # masked on the wire
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-truncate"):
            conn.execute(f'TRUNCATE "{SCRIPT}"')
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-update-without-where"):
            conn.execute(f"UPDATE ev_people SET email = '{LITERAL}'")
        conn.execute("SELECT 1")


def _failed_logins(gw: Gateway, run: Run) -> None:
    forged = gw.token("mallory", "sre")[:-4] + "AAAA"
    garbage = f"not-a-token-{LITERAL}"
    run.tokens += [forged, garbage]
    for user, password in (("mallory", forged), ("nobody", garbage)):
        with pytest.raises(psycopg.OperationalError, match="authentication failed"):
            psycopg.connect(gw.dsn(user, password)).close()


def _pending(gw: Gateway, requester: str) -> Review:
    rs = ReviewStore(gw.store())
    found: Review | None = flush_wait(lambda: next((r for r in rs.list("pending") if r.requester == requester),
                                                   None), 15)
    assert found is not None, f"no pending review of {requester}"
    return found


def _held(conn: psycopg.Connection[Any], sql: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            out["result"] = conn.execute(sql)
        except psycopg.Error as exc:
            out["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, out


def _reviews(gw: Gateway, run: Run) -> None:
    """rita's UPDATE approved by bob and run; her DELETE denied by carol with a reason."""
    token, bob, carol = gw.token("rita", "eng"), gw.token("bob", "sre"), gw.token("carol", "sre")
    run.tokens += [token, bob, carol]
    with psycopg.connect(gw.dsn("rita", token), autocommit=True) as conn:
        t, out = _held(conn, f"UPDATE ev_orders SET note = '{LITERAL}' WHERE id = 1")
        run.approved = _pending(gw, "rita").id
        gw.cli("reviews", "approve", run.approved, "--token", bob, "--reason", "checked INC-1")
        t.join(15)
        assert "error" not in out and out["result"].rowcount == 1, out
        t, out = _held(conn, "DELETE FROM ev_orders WHERE id = 2")
        run.denied = _pending(gw, "rita").id
        gw.cli("reviews", "deny", run.denied, "--token", carol, "--reason", "use the refund flow")
        t.join(15)
        assert isinstance(out.get("error"), psycopg.errors.InsufficientPrivilege), out


def _jit(gw: Gateway, run: Run) -> None:
    """dave asks for ops, erin approves, dave's session starts the grant, and it is revoked."""
    dave, erin = gw.token("dave", "eng"), gw.token("erin", "sre")
    run.tokens += [dave, erin]
    res = gw.cli("access", "request", "ops", "--for", "30m", "--reason", "INC-2: look at ops", "--token", dave)
    rid = res.stdout.split()[2].rstrip(":")
    gw.cli("reviews", "approve", rid, "--token", erin)
    with psycopg.connect(gw.dsn("dave", dave, dbname="ops"), autocommit=True) as conn:
        conn.execute("SELECT 1")
        (grant,) = GrantStore(gw.store()).find("dave")
        run.grant = grant.id
        gw.cli("access", "revoke", grant.id, "--reason", "done")
        ended = flush_wait(lambda: [s for s in gw.store().sessions(user="dave") if s["ended_at"]], 15)
        assert ended and "revoked" in ended[0]["end_reason"], ended  # the gateway ended the session it used


def _evidence(run: Run, out: Path, *extra: str, store_url: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [*WARDGATE, "evidence", "-c", str(run.config), "--from", run.since, "--to", run.until, "-o", str(out),
            "--public-key", str(run.public_key), *extra]
    if store_url:
        args += ["--store", store_url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def _public_key(config: Path) -> Path:
    path = config.parent / "audit.pub"
    path.write_text(subprocess.run([*WARDGATE, "audit", "public-key", "-c", str(config)], capture_output=True,
                                   text=True, check=True).stdout)
    return path


def _extra(upstream: UpstreamDB, rules: list[dict[str, Any]]) -> dict[str, Any]:
    ops = {"upstream": f"postgresql://{upstream.role}@{PG_HOST}:{PG_PORT}/{upstream.name}", "allow_groups": ["dba"],
           "access": {"review": {"approvers": ["sre"]}, "max_duration": "1h"}}
    return {"rules": rules, "masking": MASKING, "connections": {"ops": ops}, "audit": {"checkpoint_every": 5}}


@pytest.fixture(scope="module")
def run(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Run:
    _tables(upstream)
    tmp = tmp_path_factory.mktemp("evidence")
    store_url = f"sqlite:///{tmp / 'store.db'}"
    since = datetime.now(UTC) - timedelta(minutes=1)
    with run_gateway(tmp / "gw", upstream, store_url=store_url, extra=_extra(upstream, RULES)) as gw:
        r = Run(gw.config_path, store_url, Path(), _iso(since), "")
        _ann(gw, r)
        _failed_logins(gw, r)
        _reviews(gw, r)
        _jit(gw, r)
        gw.cli("service-account", "create", "ev-agent", "--groups", "eng")
        flush_wait(lambda: len([s for s in gw.store().sessions() if s["ended_at"]]) == 3)
    # the same gateway directory (so the same checkpoint key) restarted with one more rule: a configuration change
    changed = [*RULES, {"name": "no-vacuum", "action": "deny", "when": {"kinds": ["vacuum"]}}]
    with run_gateway(tmp / "gw", upstream, store_url=store_url, extra=_extra(upstream, changed)):
        pass
    r.until = _iso(datetime.now(UTC) + timedelta(minutes=1))
    r.public_key = _public_key(r.config)
    r.config_sha = [e["detail"]["sha256"] for e in reversed(Store(store_url).events(kind="config_loaded"))]
    assert len(r.config_sha) == 2 and r.config_sha[0] != r.config_sha[1]
    return r


@pytest.fixture(scope="module")
def reports(run: Run, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """The report in both formats."""
    tmp = tmp_path_factory.mktemp("reports")
    res = _evidence(run, tmp / "report.html")
    assert res.returncode == 0, res.stderr
    assert "verification OK" in res.stderr, res.stderr
    res = _evidence(run, tmp / "report.json")
    assert res.returncode == 0, res.stderr
    return json.loads((tmp / "report.json").read_text()), (tmp / "report.html").read_text()


def test_json_report_counts_names_and_decisions(run: Run, reports: tuple[dict[str, Any], str]) -> None:
    ev, _ = reports
    assert list(ev) == TOP_KEYS and ev["format"] == "wardgate-evidence/1"
    assert ev["period"]["start"].startswith(run.since[:19]) and ev["period"]["end"].startswith(run.until[:19])
    s = ev["summary"]
    assert (s["sessions"], s["statements"], s["allowed"], s["denied"], s["reviewed"]) == (3, 8, 4, 2, 2), s
    assert (s["people"], s["connections"], s["review_requests"], s["access_requests"], s["grants"]) == (3, 2, 2, 1, 1)
    assert (s["auth_failures"], s["config_loads"], s["config_changes"], s["masked_values"]) == (2, 2, 1, 3)
    assert s["verified"] is True and s["audit_mismatches"] == 0

    people = {p["user"]: p for p in ev["access"]["by_person"]["items"]}
    assert set(people) == {"ann", "rita", "dave"}
    assert (people["ann"]["sessions"], people["ann"]["statements"], people["ann"]["connections"]) == (1, 5, ["app"])
    assert people["ann"]["auth_methods"] == ["token"] and people["ann"]["groups"] == ["eng"]
    assert people["dave"]["connections"] == ["ops"] and people["dave"]["statements"] == 1
    conns = {c["connection"]: c for c in ev["access"]["by_connection"]["items"]}
    assert (conns["app"]["sessions"], conns["app"]["statements"], conns["app"]["people"]) == (2, 7, 2)

    denials = ev["denials"]["items"]["items"]
    assert {d["rule"] for d in denials} == {"no-truncate", "no-update-without-where"}
    assert {(r["rule"], r["count"]) for r in ev["denials"]["by_rule"]} == {("no-truncate", 1),
                                                                           ("no-update-without-where", 1)}
    truncate = next(d for d in denials if d["rule"] == "no-truncate")
    assert truncate["user"] == "ann" and truncate["statement"] == f'TRUNCATE "{SCRIPT}"'
    assert truncate["sqlstate"] == "42501" and truncate["reason"]
    assert next(d for d in denials if d["kind"] == "update")["statement"] == "UPDATE ev_people SET email = $1"

    reviews = {r["id"]: r for r in ev["reviews"]["items"]["items"]}
    assert ev["reviews"]["by_status"] == {"executed": 1, "denied": 1}
    ok, no = reviews[run.approved], reviews[run.denied]
    assert (ok["requester"], ok["status"], ok["decided_by"], ok["rule"]) == ("rita", "executed", ["bob"],
                                                                              "orders-need-review")
    assert ok["statement"] == "UPDATE ev_orders SET note = $1 WHERE id = $2" and ok["executed_at"]
    assert [(v["reviewer"], v["vote"], v["reason"]) for v in ok["votes"]] == [("bob", "approve", "checked INC-1")]
    assert [(v["reviewer"], v["vote"], v["reason"]) for v in no["votes"]] == [("carol", "deny", "use the refund flow")]
    assert no["status"] == "denied" and ok["audit_match"] and no["audit_match"]

    (req,) = ev["jit_access"]["requests"]["items"]
    assert (req["requester"], req["connection"], req["approved_by"], req["duration"]) == ("dave", "ops", ["erin"],
                                                                                          1800.0)
    g = req["grant"]
    assert g["id"] == run.grant and g["revoked_at"] and g["revoke_reason"] == "done" and g["sessions"] == 1
    assert req["audit_match"] and ev["jit_access"]["revoked"] == 1

    masked = {(m["connection"], m["rule"], m["column"]): m for m in ev["masking"]["by_rule"]["items"]}
    (row,) = masked.values()
    assert row["rule"] == "people-pii" and row["column"].endswith("ev_people.email")
    assert (row["statements"], row["values"]) == (1, 3)

    failures = {f["user"]: f for f in ev["auth_failures"]["items"]["items"]}
    assert set(failures) == {"mallory", "nobody"} and failures["mallory"]["connection"] == "app"
    assert "signature" in failures["mallory"]["reason"] and failures["nobody"]["reason"]
    assert failures["mallory"]["client_addr"]

    loads = ev["config_changes"]["loads"]["items"]
    assert [c["sha256"] for c in loads] == run.config_sha
    assert loads[1]["changed"] and not loads[0]["changed"]
    assert "rules" in loads[1]["changed_sections"] and "masking" not in loads[1]["changed_sections"]  # (and listen:
    # each run_gateway takes a free port)
    assert loads[1]["previous_sha256"] == run.config_sha[0]

    admin = ev["admin_changes"]
    assert [(e["kind"], e["subject"]) for e in admin["events"]["items"]] == [("service_account_created", "ev-agent")]
    assert admin["tokens_issued"] >= 7 and {t["subject"] for t in admin["tokens"]["items"]} >= {"ann", "bob", "erin"}

    v = ev["verification"]
    assert v["ok"] and v["problems"] == {"total": 0, "omitted": 0, "items": []}
    assert v["tables_checked"] and v["keys_from"] == "files"
    assert v["checkpoints"] >= 2 and v["period_fully_signed"]
    cp = v["last_checkpoint"]
    assert cp is not None and cp["verified"] and cp["kid"] in v["keys"]
    assert {c["chain"] for c in v["period_coverage"]} >= {"cli", cp["chain"]}

    buckets = ev["activity"]["buckets"]
    assert ev["activity"]["grain"] == "hour" and buckets
    assert sum(b["allowed"] for b in buckets) == 4 and sum(b["denied"] for b in buckets) == 2
    assert sum(b["reviewed"] for b in buckets) == 2 and sum(b["other"] for b in buckets) == 0


def test_no_literal_no_token_and_the_html_escapes(run: Run, reports: tuple[dict[str, Any], str]) -> None:
    ev, page = reports
    dumped = json.dumps(ev)
    for text_ in (dumped, page):
        assert LITERAL not in text_
        for token in run.tokens:
            assert token not in text_ and token[-40:] not in text_
    assert SCRIPT in dumped  # the JSON has the identifier as recorded...
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # ...the page shows it as text
    assert "<script" not in page.lower()
    # self-contained: nothing to fetch, no script
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(link|img|iframe|object)\b|\bsrc=|@import", page, re.I)
    assert "Audit record verified: OK" in page and "FAILED" not in page
    assert "<svg" in page and page.count("<rect") >= 3
    for needle in ("bob", "carol", "use the refund flow", "people-pii", run.grant, run.config_sha[1], "mallory",
                   "no-truncate", "ev-agent"):
        assert needle in page, needle


def test_max_items_bounds_lists_and_states_the_rest(run: Run, tmp_path: Path) -> None:
    res = _evidence(run, tmp_path / "small.json", "--max-items", "1")
    assert res.returncode == 0, res.stderr
    ev = json.loads((tmp_path / "small.json").read_text())
    failures = ev["auth_failures"]["items"]
    assert (failures["total"], failures["omitted"], len(failures["items"])) == (2, 1, 1)
    assert ev["summary"]["auth_failures"] == 2  # the counts are of everything, not of what is listed
    assert _evidence(run, tmp_path / "small.html", "--max-items", "1").returncode == 0
    assert "and 1 more" in (tmp_path / "small.html").read_text()


def _copy(run: Run, tmp: Path, name: str, tamper: Callable[[sqlite3.Connection], None]) -> str:
    target = tmp / f"{name}.db"
    with sqlite3.connect(run.store_url.removeprefix("sqlite:///")) as src, sqlite3.connect(target) as dst:
        src.backup(dst)  # WAL mode: a file copy could miss rows
    with sqlite3.connect(target) as conn:
        tamper(conn)
    return f"sqlite:///{target}"


def test_a_tampered_statement_makes_the_report_say_failed(run: Run, tmp_path: Path) -> None:
    url = _copy(run, tmp_path, "tampered", lambda c: c.execute(
        "UPDATE statements SET text = 'SELECT 1' WHERE kind = 'truncate'"))
    res = _evidence(run, tmp_path / "report.html", store_url=url)
    assert res.returncode == 1 and "verification FAILED" in res.stderr, res.stderr
    page = (tmp_path / "report.html").read_text()
    assert "Audit record verification FAILED" in page and "statements" in page
    assert _evidence(run, tmp_path / "report.json", store_url=url).returncode == 1
    ev = json.loads((tmp_path / "report.json").read_text())
    assert not ev["verification"]["ok"] and not ev["summary"]["verified"]
    assert any(p["chain"] == "statements" and p["what"] == "altered" for p in ev["verification"]["problems"]["items"])


def test_a_forged_vote_in_the_unchained_table_is_flagged(run: Run, tmp_path: Path) -> None:
    """The reviews tables are not chained: a vote slipped into them shows against the chained review events."""
    def forge(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO review_votes (review_id, reviewer, groups, approve, reason, at) "
                  "SELECT id, 'mallory', '[\"sre\"]', 1, 'looks fine', created_at FROM reviews WHERE id = ?",
                  (run.approved,))

    url = _copy(run, tmp_path, "forged", forge)
    res = _evidence(run, tmp_path / "report.json", store_url=url)
    assert res.returncode == 0, res.stderr  # the chain itself is intact
    assert "disagree with their chained events" in res.stderr
    ev = json.loads((tmp_path / "report.json").read_text())
    bad = next(r for r in ev["reviews"]["items"]["items"] if r["id"] == run.approved)
    assert not bad["audit_match"] and "mallory: approve" in bad["audit_note"]
    assert ev["summary"]["audit_mismatches"] == 1


def test_postgres_store(upstream: UpstreamDB, tmp_path: Path, pg_store_url: str) -> None:
    """The same figures from a PostgreSQL store, where masking totals and time buckets are other SQL."""
    _tables(upstream)
    since = datetime.now(UTC) - timedelta(minutes=1)
    with run_gateway(tmp_path / "gw", upstream, store_url=pg_store_url, extra=_extra(upstream, RULES)) as gw:
        r = Run(gw.config_path, pg_store_url, Path(), _iso(since), "")
        _ann(gw, r)
        _failed_logins(gw, r)
    r.until = _iso(datetime.now(UTC) + timedelta(minutes=1))
    r.public_key = _public_key(r.config)
    res = _evidence(r, tmp_path / "report.json")
    assert res.returncode == 0, res.stderr
    ev = json.loads((tmp_path / "report.json").read_text())
    s = ev["summary"]
    assert (s["sessions"], s["statements"], s["allowed"], s["denied"], s["masked_values"]) == (1, 5, 3, 2, 3), s
    assert s["auth_failures"] == 2 and s["verified"] and ev["verification"]["last_checkpoint"]["verified"]
    (row,) = ev["masking"]["by_rule"]["items"]
    assert (row["connection"], row["rule"], row["statements"], row["values"]) == ("app", "people-pii", 1, 3)
    buckets = ev["activity"]["buckets"]
    assert sum(b["allowed"] + b["denied"] for b in buckets) == 5
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z", b["start"]) for b in buckets)
    assert LITERAL not in json.dumps(ev)
    # tampering with the PostgreSQL store is found as on SQLite
    engine = create_engine(engine_url(pg_store_url))
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE statements SET text = 'SELECT 1' WHERE kind = 'truncate'"))
    finally:
        engine.dispose()
    res = _evidence(r, tmp_path / "tampered.html")
    assert res.returncode == 1 and "FAILED" in (tmp_path / "tampered.html").read_text()


def test_bad_usage(run: Run, tmp_path: Path) -> None:
    res = _evidence(run, tmp_path / "report.txt")
    assert res.returncode == 2 and "name it .html or .json" in res.stderr
    res = subprocess.run([*WARDGATE, "evidence", "-c", str(run.config), "--from", "2026-12-02", "--to", "2026-12-01",
                          "-o", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "later than --from" in res.stderr
    res = subprocess.run([*WARDGATE, "evidence", "-c", str(run.config), "--from", "yesterday",
                          "-o", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "2026-12-01" in res.stderr
