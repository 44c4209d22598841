"""Session replay through a live gateway: results kept as the client received them (masked), bounded, replayed
in the terminal and as asciicast v2, from psycopg (text), asyncpg (binary) and psql."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.conftest import Gateway, UpstreamDB, flush_wait, recorded, run_gateway, unique, unverified_tls
from wardgate.audit.samples import readable
from wardgate.store.reviews import ReviewStore

EMAIL = "ada.replay@example.com"
RULES = [{"name": "people-update-review", "action": "review", "when": {"kinds": ["update"], "tables": ["r_people"]},
          "review": {"approvers": ["sre"], "expires_after": "60s"}}]
MASKING = {"rules": [{"name": "pii", "columns": ["r_people.email"], "detect": ["email"], "style": "partial"}]}


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with upstream.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS r_people (id int PRIMARY KEY, name text, email text, "
                     "score float8, born date, seen timestamptz, ok bool, note text)")
        conn.execute("TRUNCATE r_people")
        conn.execute("INSERT INTO r_people SELECT i, 'person ' || i, 'p' || i || '@example.org', i * 1.5, "
                     "date '2000-01-01' + i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour', "
                     "i % 2 = 0, repeat('x', 100) FROM generate_series(1, 10) i")
        conn.execute("UPDATE r_people SET email = %s WHERE id = 1", (EMAIL,))
    extra = {"masking": MASKING, "audit": {"replay": {"rows": 3, "value_bytes": 32}},
             "policy": {"exempt_groups": []}, "rules": RULES}
    with run_gateway(tmp_path_factory.mktemp("replay"), upstream, extra=extra) as g:
        yield g


def _sample(stmt: dict[str, Any]) -> dict[str, Any]:
    assert stmt["result_sample"], f"no sample kept for {stmt['text']}"
    return readable(stmt["result_sample"])


def test_text_results_are_kept_masked_and_bounded(gw: Gateway) -> None:
    user = unique("rp")
    with psycopg.connect(gw.dsn(user, gw.token(user))) as conn:
        rows = conn.execute("SELECT id, email, note FROM r_people ORDER BY id").fetchall()
        assert rows[0][1] != EMAIL and len(rows) == 10  # the client got masked values
        conn.execute("SELECT 1 AS one WHERE false").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE r_people")
    _, stmts = recorded(gw, user)
    sel = next(s for s in stmts if s["text"].startswith("SELECT id, email"))
    sample = _sample(sel)
    assert [c["name"] for c in sample["columns"]] == ["id", "email", "note"]
    assert len(sample["rows"]) == 3 and sample["total"] == 10  # audit.replay.rows: 3
    assert sample["rows"][0][0] == "1" and sample["rows"][0][1] == rows[0][1]  # exactly what the client saw
    assert sample["rows"][0][2] == "x" * 32 and sample["cut"] == 3  # value_bytes: 32
    empty = _sample(next(s for s in stmts if "WHERE false" in (s["text"] or "")))
    assert empty["rows"] == [] and [c["name"] for c in empty["columns"]] == ["one"]
    assert next(s for s in stmts if s["kind"] == "drop")["result_sample"] is None
    # no unmasked value anywhere in the audit store: not in its file, not in any sample's bytes
    db = Path(gw.store_url.removeprefix("sqlite:///")).read_bytes()
    assert EMAIL.encode() not in db
    samples = [s["result_sample"] for s in stmts if s["result_sample"]]
    assert len(samples) == 2
    for text in samples:
        doc = json.loads(text)
        assert EMAIL.encode() not in base64.b64decode(doc["rows"]) and EMAIL not in json.dumps(readable(text))

    out = gw.cli("sessions", "replay", sel["session_id"], "--speed", "0").stdout
    assert f"{user}@app> SELECT id, email, note FROM r_people ORDER BY id" in out
    assert rows[0][1] in out and EMAIL not in out
    assert "(10 rows; the audit kept the first 3)" in out
    assert "masked email (column rule, rule pii): 10" in out
    assert "DENIED by rule" in out and "DROP TABLE r_people" in out
    assert "-- session ended (client terminated)" in out


def test_binary_results_through_asyncpg(gw: Gateway) -> None:
    user = unique("rpa")
    token = gw.token(user)

    async def go() -> list[Any]:
        ctx = unverified_tls()
        conn = await asyncpg.connect(host="127.0.0.1", port=gw.port, user=user, password=token, database="app",
                                     ssl=ctx)
        try:
            return list(await conn.fetch("SELECT id, email, score, born, seen, ok FROM r_people "
                                         "WHERE id <= $1 ORDER BY id", 2))
        finally:
            await conn.close()

    rows = asyncio.run(go())
    assert rows[0]["email"] != EMAIL
    _, stmts = recorded(gw, user)
    sample = _sample(next(s for s in stmts if "FROM r_people" in (s["text"] or "")))
    assert [c["format"] for c in sample["columns"]] == [1] * 6  # binary results, decoded for the replay
    assert sample["rows"][0] == ["1", rows[0]["email"], "1.5", "2000-01-02", "2026-01-01 01:00:00+00:00", "f"]
    assert sample["total"] == 2


def test_psql_session_replayed_as_asciicast(gw: Gateway, tmp_path: Path) -> None:
    user = unique("rpq")
    env = {**os.environ, "PGPASSWORD": gw.token(user), "PGSSLMODE": "require"}
    subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(gw.port), "-U", user, "-d", "app", "-c",
                    "SELECT name, email FROM r_people WHERE id = 1"], env=env, check=True, capture_output=True,
                   timeout=30)
    session, _ = recorded(gw, user)
    cast = tmp_path / "s.cast"
    gw.cli("sessions", "replay", session["id"][:12], "--format", "asciicast", "-o", str(cast))
    lines = cast.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["width"] > 0 and header["height"] > 0
    assert header["timestamp"] == int(session["started_at"].timestamp())
    events = [json.loads(x) for x in lines[1:]]
    assert all(e[1] == "o" and isinstance(e[2], str) for e in events)
    times = [e[0] for e in events]
    assert times == sorted(times) and times[0] == 0
    text = "".join(e[2] for e in events)
    assert "person 1" in text and EMAIL not in text and "a*********@*******.com" in text
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")


def test_replay_refuses_unknown_session(gw: Gateway) -> None:
    res = gw.cli("sessions", "replay", "ffffffff-nope", check=False)
    assert res.returncode == 1 and "no single session matches" in res.stderr


def test_a_reviewed_statement_replays_with_its_approval(gw: Gateway) -> None:
    user, reviewer = unique("rpr"), unique("sre")
    proc = subprocess.Popen(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", gw.dsn(user, gw.token(user)), "-c",
                             "UPDATE r_people SET score = 2 WHERE id = 9"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rs = ReviewStore(gw.store())
        pending = flush_wait(lambda: next((r for r in rs.list("pending") if r.requester == user), None), 15)
        assert pending is not None
        res = gw.cli("reviews", "approve", pending.id, "--token", gw.token(reviewer, "sre"), "--reason", "ticket 7")
        assert "approved" in res.stdout
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.strip() == "UPDATE 1", err
    session, _ = recorded(gw, user)
    text = gw.cli("sessions", "replay", session["id"], "--speed", "0").stdout
    lines = text.splitlines()
    expected = [f"{user}@app> UPDATE r_people SET score = $1 WHERE id = $2",
                f"HELD for review {pending.id} (rule people-update-review): waiting for sre",
                f"{reviewer} voted to approve review {pending.id}: ticket 7",
                f"review {pending.id} approved by {reviewer}",
                f"review {pending.id}: the approved statement runs",
                f"reviewed (rule people-update-review): review {pending.id} approved by {reviewer}"]
    at = [next(i for i, line in enumerate(lines) if line.startswith(e)) for e in expected]
    assert at == sorted(at), text  # in the order they happened
    assert "UPDATE 1" in lines[at[-1] + 1]
