"""A chain entry holds every audit record of one store transaction (the shipper commits hundreds at a time under
load). Each record of such an entry is proved on its own: editing, dropping or reordering one inside the entry,
or editing the table row it was written from, is found; an entry of one record is the record's text, as before.

On a real SQLite store, written and verified with the gateway's own code (Store.write, verify_store).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from wardgate.audit.chain import entry_hash, entry_records, entry_text
from wardgate.audit.signing import audit_key, sign_head
from wardgate.audit.verify import verify_store
from wardgate.store import Store, chainlog
from wardgate.store.db import Write

CHAIN = "gw-batch.journal"


def _writes(session: str) -> list[Write]:
    t = 1_800_000_000.25
    return [
        Write("sessions", {"id": session, "user": "ann", "groups": '["dba"]', "auth_method": "oidc",
                           "connection": "ops", "protocol": "postgres", "client_addr": "127.0.0.1",
                           "application_name": "psql", "gateway": "gw", "started_at": t,
                           "bytes_from_client": 0, "bytes_to_client": 0}),
        *[Write("statements", (session, seq, t + seq, "simple", "select", f"select 'statement {seq}'", 0, "ok",
                               "SELECT 1", 1, None, None, 0.1, "allow", "default", None, None, None))
          for seq in (1, 2, 3)],
        Write("events", {"at": t + 4, "kind": "auth_failed", "subject": "bob", "connection": "ops",
                         "client_addr": "127.0.0.1", "session_id": None, "detail": '{"reason": "expired"}'}),
    ]


def _store(path: Path, sign: bool = True) -> tuple[str, dict[str, object]]:
    """A store holding one five-record entry (signed), then one single-record entry; its URL and verifying keys."""
    url = f"sqlite:///{path}"
    store = Store(url)
    store.migrate()
    session = str(uuid.uuid4())
    writes = _writes(session)
    head = store.write(writes, chain=CHAIN)
    assert head is not None and head.seq == 1
    assert entry_records(head.record) == chainlog.records(writes) and len(entry_records(head.record)) == 5
    key = audit_key(path.parent / "audit.key", store)
    if sign:
        assert sign_head(store, key, CHAIN)
    one = Write("events", {"at": time.time(), "kind": "config_loaded", "subject": None, "connection": None,
                           "client_addr": None, "session_id": None, "detail": "{}"})
    last = store.write([one], chain=CHAIN)
    assert last is not None and last.seq == 2 and last.record == chainlog.records([one])[0]  # the old format
    if sign:
        assert sign_head(store, key, CHAIN)
    store.close()
    return url, {key.kid: key.private.public_key()}


def _run(path: Path, *sql: tuple[str, tuple[object, ...]]) -> None:
    with sqlite3.connect(path) as db:
        for q, params in sql:
            db.execute(q, params)


def _entry(path: Path, seq: int) -> tuple[str, str, str]:
    with sqlite3.connect(path) as db:
        at, prev, record = db.execute("SELECT at, prev, record FROM audit_entries WHERE chain = ? AND seq = ?",
                                      (CHAIN, seq)).fetchone()
    return str(at), str(prev), str(record)


def _rewrite_entry(path: Path, seq: int, record: str) -> None:
    """Replace an entry's records and re-hash it and the entries after it, as someone with write access could."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT seq, at, prev, record FROM audit_entries WHERE chain = ? AND seq >= ? ORDER BY seq",
                          (CHAIN, seq)).fetchall()
        prev = rows[0][2]
        for s, at, _, rec in rows:
            h = entry_hash(CHAIN, s, at, prev, record if s == seq else rec)
            db.execute("UPDATE audit_entries SET prev = ?, record = ?, hash = ? WHERE chain = ? AND seq = ?",
                       (prev, record if s == seq else rec, h, CHAIN, s))
            prev = h
        db.execute("UPDATE audit_heads SET hash = ? WHERE chain = ?", (prev, CHAIN))


def _problems(url: str, keys: dict[str, object]) -> list[tuple[str, str, int, str]]:
    report = verify_store(Store(url), keys)  # type: ignore[arg-type]
    assert report.tables_checked
    return [(p.chain, p.what, p.seq, p.detail) for p in report.problems]


def test_an_intact_store_of_batched_entries_verifies(tmp_path: Path) -> None:
    url, keys = _store(tmp_path / "s.db")
    report = verify_store(Store(url), keys)  # type: ignore[arg-type]
    assert report.ok and report.entries == 2 and report.checkpoints == 2 and report.unattested == {}, report


def test_a_record_edited_inside_an_entry_is_found_there(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url, keys = _store(path)
    _run(path, ("UPDATE audit_entries SET record = replace(record, 'statement 2', 'statement 9') WHERE seq = 1", ()))
    found = _problems(url, keys)
    assert (CHAIN, "altered", 1) in [f[:3] for f in found], found
    detail = next(d for c, w, s, d in found if (c, w, s) == (CHAIN, "altered", 1) and "content" in d)
    assert "5 records: sessions insert, 3 statements insert, events insert" in detail, detail


def test_a_record_dropped_from_an_entry_and_rehashed_is_found(tmp_path: Path) -> None:
    """Re-hashed, the chain holds up to its signed checkpoint, which no longer matches; and the table row whose
    record went is no longer in any chain."""
    path = tmp_path / "s.db"
    url, keys = _store(path)
    recs = entry_records(_entry(path, 1)[2])
    _rewrite_entry(path, 1, entry_text([r for r in recs if "statement 2" not in r]))
    found = _problems(url, keys)
    assert (CHAIN, "altered", 1) in [f[:3] for f in found], found  # the checkpoint at #1
    assert ("statements", "inserted") in [f[:2] for f in found], found


def test_records_reordered_inside_a_signed_entry_are_found(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url, keys = _store(path)
    recs = entry_records(_entry(path, 1)[2])
    _rewrite_entry(path, 1, entry_text([recs[0], recs[2], recs[1], *recs[3:]]))
    found = _problems(url, keys)
    assert [f[:3] for f in found] == [(CHAIN, "altered", 1), (CHAIN, "altered", 2)], found  # both checkpoints


def test_a_table_row_edited_under_a_batched_entry_is_found(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url, keys = _store(path)
    _run(path, ("UPDATE statements SET text = 'select 1' WHERE seq = 3", ()),
         ("DELETE FROM events WHERE kind = 'auth_failed'", ()))
    found = [f[:2] for f in _problems(url, keys)]
    assert ("statements", "altered") in found and ("events", "removed") in found, found


def test_an_unsigned_batched_entry_is_still_checked_against_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url, keys = _store(path, sign=False)
    _run(path, ("UPDATE sessions SET user = 'mallory'", ()))
    found = [f[:2] for f in _problems(url, keys)]
    assert ("sessions", "altered") in found, found
