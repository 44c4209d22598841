"""How the SQLite store binds values: None through the NoneType adapter the store registers (store/db.py says
why), still stored as NULL, in the statement inserts the shipper makes and in the dict writes of everything else."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from wardgate.store import Store
from wardgate.store.db import Write


def test_none_is_null_through_the_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    adapter = sqlite3.adapters.get((type(None), sqlite3.PrepareProtocol))
    assert adapter is not None and adapter(None) is None  # registered, and the identity on None
    session = str(uuid.uuid4())
    store.write([Write("sessions", {"id": session, "user": "u", "groups": "[]", "auth_method": "password",
                                    "connection": "c", "protocol": "postgres", "client_addr": "127.0.0.1",
                                    "application_name": "", "gateway": "g", "started_at": time.time(),
                                    "bytes_from_client": 0, "bytes_to_client": 0, "ended_at": None,
                                    "token_id": None})])
    store.write([Write("statements", (session, 1, time.time(), "simple", "select", None, 0, "ok", "SELECT 1", 1,
                                      None, None, 0.5, "allow", "default", None, None, None))], chain="test")
    store.close()
    db = sqlite3.connect(tmp_path / "store.db")
    try:
        kinds = db.execute("SELECT typeof(text), typeof(sqlstate), typeof(error_message), typeof(reason), "
                           "typeof(masked), typeof(result_sample), typeof(command_tag) FROM statements").fetchall()
        assert kinds == [("null", "null", "null", "null", "null", "null", "text")]
        assert db.execute("SELECT typeof(ended_at), typeof(token_id) FROM sessions").fetchall() == [("null", "null")]
    finally:
        db.close()
