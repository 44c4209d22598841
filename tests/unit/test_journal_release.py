"""The shipper gives the shipped part of a journal back to the filesystem (shipper.release_shipped): the journal's
offsets never change, its disk use stays near what is not yet in the store, and nothing unshipped is ever freed."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import pytest

from wardgate.audit import shipper as shipper_mod
from wardgate.audit.journal import Journal, encode
from wardgate.audit.shipper import RELEASE_STEP, Shipper
from wardgate.protocols.postgres import encode as wire
from wardgate.protocols.postgres.messages import Field
from wardgate.store import Store, StoreError
from wardgate.store.db import Write

_TEXT = wire.row_description([Field("payload", 0, 0, 25, -1, -1, 0)])


def _session(store: Store) -> str:
    sid = str(uuid.uuid4())
    store.write([Write("sessions", {"id": sid, "user": "ann", "groups": "[]", "auth_method": "token",
                                    "connection": "c", "protocol": "postgres", "client_addr": "127.0.0.1",
                                    "application_name": "t", "gateway": "g", "started_at": time.time(),
                                    "bytes_from_client": 0, "bytes_to_client": 0})])
    return sid


def _statements(sid: str, first: int, n: int) -> list[Write]:
    """Statement records of ~10 KB each (a result sample of one wide row), as the relay journals them."""
    row = wire.data_row([b"x" * 10_000])
    return [Write("statements", (sid, seq, time.time(), "simple", "select", "SELECT payload FROM t", 0, "ok",
                                 "SELECT 1", 1, None, None, 0.1, "allow", "default", None, None,
                                 (_TEXT, row, 1, 0, 1)))
            for seq in range(first, first + n)]


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


def test_shipped_steps_are_released_and_the_rest_ships(tmp_path: Path, store: Store) -> None:
    sid = _session(store)
    journal = Journal(tmp_path / "journal", "gw-1")
    for first in range(1, 401, 50):
        journal.append(encode(_statements(sid, first, 50)))
    size = journal.offset
    assert size > 3 * RELEASE_STEP
    assert _allocated(journal.path) >= size - 4096
    file_size = os.stat(journal.path).st_size  # the records and the space reserved after them

    ship = Shipper(store, journal.path)
    assert ship.ship_available() == 400
    assert ship.released == size - size % RELEASE_STEP  # every whole step the store holds
    assert os.stat(journal.path).st_size == file_size  # offsets unchanged: a hole, not a truncation
    assert _allocated(journal.path) <= file_size - ship.released + 64 * 1024
    with open(journal.path, "rb") as fh:
        assert fh.read(RELEASE_STEP) == bytes(RELEASE_STEP)  # the released part reads as zeros
    ship.close()

    # More records after the hole, shipped by a new shipper (a restart) from the store's offset: exactly once.
    journal.append(encode(_statements(sid, 401, 100)))
    again = Shipper(store, journal.path)
    assert again.offset == size
    assert again.ship_available() == 100
    assert again.released == journal.offset - journal.offset % RELEASE_STEP
    again.close()
    journal.close(remove=False)
    with store.engine.connect() as conn:
        from sqlalchemy import text

        seqs = [r[0] for r in conn.execute(text("SELECT seq FROM statements WHERE session_id = :s ORDER BY seq"),
                                           {"s": sid})]
    assert seqs == list(range(1, 501))


def test_nothing_is_released_before_the_store_commits(tmp_path: Path, store: Store,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sid = _session(store)
    journal = Journal(tmp_path / "journal", "gw-2")
    journal.append(encode(_statements(sid, 1, 250)))
    before = _allocated(journal.path)

    def refuse(*_a: object, **_k: object) -> None:
        raise StoreError("the store is down")

    ship = Shipper(store, journal.path)
    monkeypatch.setattr(store, "write", refuse)
    with pytest.raises(StoreError):
        ship.ship_available()
    assert ship.released == 0 and ship.offset == 0
    assert _allocated(journal.path) == before
    monkeypatch.undo()
    assert ship.ship_available() == 250  # the store is back: everything ships, then is released
    assert ship.released == 2 * RELEASE_STEP
    ship.close()
    journal.close(remove=True)


def test_a_filesystem_without_holes_keeps_the_journal(tmp_path: Path, store: Store,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    sid = _session(store)
    journal = Journal(tmp_path / "journal", "gw-3")
    journal.append(encode(_statements(sid, 1, 250)))
    calls: list[tuple[int, int]] = []

    def unsupported(_fd: int, start: int, length: int) -> bool:
        calls.append((start, length))
        return False

    monkeypatch.setattr(shipper_mod, "punch_hole", unsupported)
    ship = Shipper(store, journal.path)
    with caplog.at_level(logging.INFO, logger="wardgate.audit.shipper"):
        assert ship.ship_available() == 250
        journal.append(encode(_statements(sid, 251, 150)))
        assert ship.ship_available() == 150
    assert calls == [(0, 2 * RELEASE_STEP)]  # tried once, then not again
    assert ship.released == 0
    assert "cannot punch holes" in caplog.text
    ship.close()
    journal.close(remove=True)


def test_punch_hole_frees_blocks(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"y" * (3 * RELEASE_STEP))
    fd = os.open(path, os.O_WRONLY)
    try:
        assert shipper_mod.punch_hole(fd, 0, 2 * RELEASE_STEP)
    finally:
        os.close(fd)
    assert os.stat(path).st_size == 3 * RELEASE_STEP
    assert _allocated(path) <= RELEASE_STEP + 64 * 1024
    data = path.read_bytes()
    assert data[: 2 * RELEASE_STEP] == bytes(2 * RELEASE_STEP) and data[2 * RELEASE_STEP :] == b"y" * RELEASE_STEP
    with pytest.raises(OSError):
        shipper_mod.punch_hole(-1, 0, RELEASE_STEP)  # a refusal other than "not supported" is an error
