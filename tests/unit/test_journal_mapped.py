"""The journal through shared mappings: the gateway copies batches into its mapping while the shipper decodes
them from its own, and never sees a batch half copied; a journal a machine crash tore at its end still drains."""

from __future__ import annotations

import logging
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wardgate.audit.journal import Journal, JournalCorrupt, encode
from wardgate.audit.shipper import Shipper, drain
from wardgate.store import Store
from wardgate.store.db import Write

_WRITER = """
import sys
from pathlib import Path
from wardgate.audit.journal import Journal, encode
from wardgate.store.db import Write
journal = Journal(Path(sys.argv[1]), "live", reserve=65536)
print("ready", flush=True)
seq = 0
for i in range(int(sys.argv[2])):
    batch = []
    for _ in range(1 + i % 3):
        seq += 1
        batch.append(Write("events", {"seq": seq, "detail": "y" * (seq % 700), "at": 1.0}))
    journal.append(encode(batch))
print(seq, flush=True)
sys.stdin.read()  # keep the journal locked and mapped until the test has read it all
journal.close(remove=False)
"""


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


def test_a_reader_never_sees_a_batch_half_copied(tmp_path: Path, store: Store) -> None:
    """A writer process appends 20,000 batches (remapping every 64 KiB) while this process decodes them from its
    own mapping as they land: every record is read whole, once, in order, and no checksum ever fails."""
    directory = tmp_path / "journal"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(directory), "20000"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        reader = Shipper(store, directory / "live.journal")
        reader.batch_size = 50  # many small reads, interleaved with the writer's appends
        seqs: list[int] = []
        during = 0
        deadline = time.monotonic() + 60
        total: int | None = None
        while total is None or len(seqs) < total:
            assert time.monotonic() < deadline, f"{len(seqs)} records read"
            writes, consumed = reader._read()  # what ship_available ships, without the store
            during += total is None
            seqs += [w.values["seq"] for w in writes]  # type: ignore[call-overload, index]
            reader.offset += consumed
            if total is None and select.select([writer.stdout], [], [], 0)[0]:
                total = int(writer.stdout.readline())  # the writer is done: this many records in all
            elif not writes:
                time.sleep(0.0005)
        assert seqs == list(range(1, total + 1))
        assert during > 100  # read while being written, not once at the end
        reader.close()
    finally:
        if writer.stdin is not None:
            writer.stdin.close()
        writer.wait(timeout=30)


def _journal(tmp_path: Path, name: str, batches: int) -> Journal:
    journal = Journal(tmp_path / "journal", name, reserve=65536)
    for i in range(batches):
        journal.append(encode([Write("events", {"kind": "k", "at": float(i), "detail": "d" * 300})]))
    return journal


def test_a_torn_last_record_is_dropped_when_draining(tmp_path: Path, store: Store,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    journal = _journal(tmp_path, "torn", 10)
    end = journal.offset
    journal.append(encode([Write("events", {"kind": "k", "at": 99.0, "detail": "t" * 3000})]))
    path = journal.path
    journal.close(remove=False)
    data = bytearray(path.read_bytes())
    data[end + 8 + 100 :] = bytes(len(data) - end - 108)  # its payload's later pages never reached the disk
    data += bytes(8192)  # and the reserve after it
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="wardgate.audit.shipper"):
        assert drain(store, path) == 10
    assert "torn by a crash of the machine" in caplog.text


def test_damage_before_more_records_is_still_damage(tmp_path: Path, store: Store) -> None:
    journal = _journal(tmp_path, "damaged", 10)
    path = journal.path
    journal.close(remove=False)
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # inside the first record, nine good records after it
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt):
        drain(store, path)
