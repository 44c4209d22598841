"""An append-only journal file: the audit record is durable here before the client hears of the statement.

Writing one batch with ``os.write`` costs a few microseconds and survives a crash of the gateway process (the
bytes are in the kernel); with ``fsync`` it also survives a crash of the machine, at the price of a disk flush
per batch. The shipper process (``shipper.py``) tails the journal into the store.

A record is ``length (u32) | checksum (u32) | payload``, the payload the record ``(table, key, values)`` in the
compact form of ``_records.c`` (first byte 1: tagged plain values, written in one C pass over the batch, checked
by CRC-32C), or, for a record holding other types, ``marshal.dumps`` of it (checked by zlib's CRC-32, as every
record was until 2026-12-07; compact records written before then start with 0 and are checked by CRC-32 too, so
older journals ship as they are). The checksum means a torn or damaged tail is recognised, never decoded. The
journal is transient (shipped within milliseconds) and private (mode 0600), so marshal's lack of a cross-version
promise and of defences against hostile input does not matter here; the compact reader checks every length anyway.

Why not marshal alone: encoding is on the relay's path, once per statement, and marshal.dumps with the Python
loop that framed its output was ~13,000 instructions a select-only record, a quarter of the gateway's per
statement; the C encoder was ~4,700, ~1,400 of it zlib's CRC-32, which CRC-32C by the CPU's crc32 instruction
replaced (bench/instructions.py).
"""

from __future__ import annotations

import fcntl
import marshal
import os
import struct
import zlib
from collections.abc import Iterator
from os import write as _write
from pathlib import Path
from typing import Any

from ..store.db import Write
from . import _records
from ._records import encode as _encode

SUFFIX = ".journal"
_HEAD = struct.Struct("!II")


class JournalCorrupt(Exception):
    """A complete record whose checksum does not match: the journal was damaged."""


# What the recorder stages: (table, key, values), the fields of a Write as one tuple, which is what a record
# holds; statements are staged so, without a Write object each.
Staged = tuple[str, str | None, dict[str, Any] | tuple[Any, ...]]


def encode(writes: list[Write]) -> bytes:
    return encode_staged([(w.table, w.key, w.values) for w in writes])


def encode_staged(records: list[Staged]) -> bytes:
    # _encode and _write are _records.encode and os.write imported by name: compiled, a module's attribute is a
    # lookup by name (~250 instructions), a global a dict lookup; both run for every statement.
    return _encode(records)


def decode(data: bytes | bytearray, start: int = 0, limit: int = 5000) -> tuple[list[Write], int]:
    """Up to ``limit`` complete records in ``data`` from ``start``, and the offset just past the last one."""
    writes: list[Write] = []
    pos = start
    end = len(data)
    view = memoryview(data)  # slices of it copy nothing
    unpack = _HEAD.unpack_from
    crc32 = zlib.crc32
    crc32c = _records.crc32c
    loads = marshal.loads
    compact = _records.decode_payload
    try:
        while end - pos >= 8 and len(writes) < limit:
            size, crc = unpack(data, pos)
            if end - pos - 8 < size:
                break  # the rest of this record has not been written (yet)
            payload = view[pos + 8 : pos + 8 + size]
            first = payload[0] if size else -1
            if (crc32c(payload) if first == 1 else crc32(payload)) != crc:
                raise JournalCorrupt(f"record at offset {pos} fails its checksum")
            try:
                # compact, or marshal (other types, older journals): our own 0600 file, checksummed
                table, key, values = compact(payload) if first in (0, 1) else loads(payload)
            except (ValueError, EOFError, TypeError) as exc:
                raise JournalCorrupt(f"record at offset {pos} cannot be decoded: {exc}") from None
            writes.append(Write(table, values, key))
            pos += 8 + size
    finally:
        view.release()  # a bytearray cannot grow while a view of it lives
    return writes, pos


class Journal:
    """One journal file per gateway process, named after it, in ``directory``."""

    def __init__(self, directory: Path, name: str, *, fsync: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{name}{SUFFIX}"
        self.fsync = fsync
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # marks the journal live for other gateways
        self.offset = os.fstat(self._fd).st_size

    @property
    def name(self) -> str:
        return self.path.name

    def append(self, data: bytes) -> int:
        """Write ``data`` whole; return the offset just past it. Raises OSError when the disk refuses."""
        n = _write(self._fd, data)
        if n < len(data):  # a short write (a full disk, a signal): the rest, without copying it
            view = memoryview(data)[n:]
            while view:
                view = view[os.write(self._fd, view):]
        if self.fsync:
            os.fsync(self._fd)
        self.offset += len(data)
        return self.offset

    def close(self, *, remove: bool) -> None:
        os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)


def leftovers(directory: Path) -> Iterator[Path]:
    """Journals of gateway processes that used this directory and are gone (a live one holds its lock)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        if not _live(path):  # a live journal is being written by another gateway beside us
            yield path


def _live(path: Path) -> bool:
    """Does a live gateway hold this journal's lock?"""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
