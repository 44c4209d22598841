"""The journal's record format: exact round trips, a torn tail left for later, damage detected."""

from __future__ import annotations

from pathlib import Path

import pytest

from wardgate.audit.journal import Journal, JournalCorrupt, decode, encode, leftovers
from wardgate.store.db import Write

WRITES = [
    Write("sessions", {"id": "s1", "user": "ann", "started_at": 1.5}),
    Write("statements", ("s1", 1, 2.5, "simple", "select", "select $1", 0, "ok", "SELECT 1", 1, None, None, 0.1)),
    Write("sessions", {"id": "s1", "end_reason": "client terminated"}, key="id"),
]


def test_round_trip() -> None:
    data = encode(WRITES)
    assert decode(data) == (WRITES, len(data))


def test_torn_tail_is_left_for_later() -> None:
    data = encode(WRITES)
    for cut in range(len(data)):
        writes, end = decode(data[:cut])
        assert writes == WRITES[: len(writes)]
        assert end <= cut
        assert decode(data[:end] + data[end:])[0] == WRITES


def test_damage_is_detected() -> None:
    data = bytearray(encode(WRITES))
    data[12] ^= 0xFF
    with pytest.raises(JournalCorrupt):
        decode(data)


def test_limit() -> None:
    data = encode(WRITES)
    writes, end = decode(data, limit=2)
    assert writes == WRITES[:2]
    assert decode(data, end)[0] == WRITES[2:]


def test_live_journals_are_not_leftovers(tmp_path: Path) -> None:
    live = Journal(tmp_path, "live")
    live.append(encode(WRITES))
    (tmp_path / "dead.journal").write_bytes(encode(WRITES))
    assert [p.name for p in leftovers(tmp_path)] == ["dead.journal"]
    live.close(remove=True)
    assert not (tmp_path / "live.journal").exists()
