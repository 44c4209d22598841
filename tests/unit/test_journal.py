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


def test_a_zero_length_ends_the_records() -> None:
    data = encode(WRITES)
    assert decode(data + bytes(4096)) == (WRITES, len(data))  # reserved space after the last record
    assert decode(bytes(64)) == ([], 0)


def test_reservations_hold_every_batch_in_order(tmp_path: Path) -> None:
    """Batches across many small reservations, one larger than a reservation: the file decodes to them all."""
    journal = Journal(tmp_path, "small", reserve=4096)
    batches = [encode(WRITES) for _ in range(200)]
    batches.insert(57, encode([Write("events", {"detail": "x" * 20_000, "at": 1.0})]))
    for b in batches:
        journal.append(b)
    assert journal.offset == sum(len(b) for b in batches)
    assert journal.path.stat().st_size >= journal.offset  # reserved ahead
    data = journal.path.read_bytes()
    assert data[: journal.offset] == b"".join(batches)
    assert not data[journal.offset :].strip(b"\0")
    journal.close(remove=False)
    assert journal.path.stat().st_size == journal.offset  # the unused reserve is cut off a journal left behind
    again = Journal(tmp_path, "small")  # reopened (not something a gateway does: names are per process)
    assert again.offset == journal.offset
    again.append(encode(WRITES))
    again.close(remove=False)
    data = journal.path.read_bytes()
    pos, found = 0, []
    while True:
        writes, pos = decode(data, pos)
        if not writes:
            break
        found += writes
    assert len(found) == 3 * 201 + 1 and pos == len(data)


def test_a_reservation_the_filesystem_refuses_is_an_oserror(tmp_path: Path) -> None:
    import resource

    journal = Journal(tmp_path, "limited", reserve=8192)
    journal.append(encode(WRITES))
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, limits[1]))  # SIGXFSZ is ignored by Python: EFBIG instead
    try:
        with pytest.raises(OSError):
            for _ in range(1000):
                journal.append(encode(WRITES))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    before = journal.offset
    journal.append(encode(WRITES))  # the limit lifted: the journal goes on where it stopped, nothing torn
    data = journal.path.read_bytes()[: journal.offset]
    writes, end = decode(data, 0, limit=10**6)
    assert end == journal.offset > before and len(writes) % 3 == 0
    journal.close(remove=True)


def test_publish_copies_whole_batches_or_refuses() -> None:
    from wardgate.audit._records import publish

    data = encode(WRITES)
    buf = bytearray(len(data) + 10)
    publish(buf, 10, data)
    assert bytes(buf[10:]) == data and not any(buf[:10])
    with pytest.raises(ValueError):
        publish(buf, 11, data)  # does not fit
    with pytest.raises(ValueError):
        publish(buf, 0, b"1234567")  # no record header
    with pytest.raises(BufferError):
        publish(bytes(100), 0, data)  # not writable


def test_reservations_without_posix_fallocate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the platform has no posix_fallocate (macOS), space is reserved by writing zeros: the same journal."""
    import os

    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    journal = Journal(tmp_path, "portable", reserve=4096)
    batches = [encode(WRITES) for _ in range(50)]
    for b in batches:
        journal.append(b)
    assert journal.path.stat().st_size >= journal.offset == sum(len(b) for b in batches)
    assert journal.path.stat().st_blocks * 512 >= journal.offset  # real blocks, not a sparse file
    data = journal.path.read_bytes()
    assert data[: journal.offset] == b"".join(batches) and not data[journal.offset :].strip(b"\0")
    journal.close(remove=True)
