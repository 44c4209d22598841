"""An append-only journal file: the audit record is durable here before the client hears of the statement.

The journal is written through a shared memory mapping of the file: a batch is copied into the page cache with
no system call, and survives a crash of the gateway process as a ``write`` would (the pages are the file's);
with ``fsync`` it also survives a crash of the machine, at the price of a disk flush per batch. Space is reserved
(``posix_fallocate``) and mapped ``RESERVE`` bytes at a time, so a full disk is refused when space is reserved,
as an ``OSError``, never as a SIGBUS on a later copy; the unused reserve reads as zeros, and a zero length word
marks the end of the records. A batch is copied with its first length word last, after a release fence
(``_records.publish``), so the shipper, which maps the file too (``shipper.py``), never decodes a batch that is
still being copied. Until 2026-12-07 every batch was an ``os.write`` (O_APPEND): the system call and the
filesystem's write path were 2.5 us of the gateway's CPU a statement here, and ~6 us of one client's latency.

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

import contextlib
import fcntl
import marshal
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from ..store.db import Write
from . import _records

# Final: compiled, a C static each; a module's attribute or a plain global is a lookup by name (~130
# instructions), and both run for every statement.
_encode: Final = _records.encode
_publish: Final = _records.publish

SUFFIX = ".journal"
_HEAD = struct.Struct("!II")
#: Journal space reserved and mapped at a time: a reservation (a system call or two and a mapping) every ~3,500
#: select-only statements.
RESERVE = 1 << 20
_MADV_POPULATE_WRITE = 23  # Linux 5.14: fault a new reservation's pages in at once, not one fault per 4 KiB later


class JournalCorrupt(Exception):
    """A complete record whose checksum does not match: the journal was damaged. ``at``: where that record starts
    (in the data decoded, or in the file where the shipper says so)."""

    def __init__(self, message: str, at: int = -1) -> None:
        super().__init__(message)
        self.at = at


# What the recorder stages: (table, key, values), the fields of a Write as one tuple, which is what a record
# holds; statements are staged so, without a Write object each.
Staged = tuple[str, str | None, dict[str, Any] | tuple[Any, ...]]


def encode(writes: list[Write]) -> bytes:
    return encode_staged([(w.table, w.key, w.values) for w in writes])


def encode_staged(records: list[Staged]) -> bytes:
    return _encode(records)


def decode(data: bytes | bytearray | mmap.mmap, start: int = 0, limit: int = 5000,
           stop: int = -1) -> tuple[list[Write], int]:
    """Up to ``limit`` complete records in ``data`` from ``start`` (and before ``stop``, when it is not -1), and
    the offset just past the last one. A zero length word ends the records (journal space reserved and not
    written yet)."""
    writes: list[Write] = []
    pos = start
    end = len(data) if stop < 0 else min(stop, len(data))
    view = memoryview(data)  # slices of it copy nothing
    unpack = _HEAD.unpack_from
    crc32 = zlib.crc32
    crc32c = _records.crc32c
    loads = marshal.loads
    compact = _records.decode_payload
    try:
        while end - pos >= 8 and len(writes) < limit:
            size, crc = unpack(data, pos)
            if size == 0:
                break  # the reserved space after the last record
            if end - pos - 8 < size:
                break  # the rest of this record has not been written (yet)
            payload = view[pos + 8 : pos + 8 + size]
            first = payload[0]  # size > 0: a zero length ended the loop above
            if (crc32c(payload) if first == 1 else crc32(payload)) != crc:
                raise JournalCorrupt(f"record at offset {pos} fails its checksum", pos)
            try:
                # compact, or marshal (other types, older journals): our own 0600 file, checksummed
                table, key, values = compact(payload) if first in (0, 1) else loads(payload)
            except (ValueError, EOFError, TypeError) as exc:
                raise JournalCorrupt(f"record at offset {pos} cannot be decoded: {exc}", pos) from None
            writes.append(Write(table, values, key))
            pos += 8 + size
    finally:
        view.release()  # a bytearray cannot grow while a view of it lives
    return writes, pos


class Journal:
    """One journal file per gateway process, named after it, in ``directory``."""

    def __init__(self, directory: Path, name: str, *, fsync: bool = False, reserve: int = RESERVE) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{name}{SUFFIX}"
        self.fsync = fsync
        self.reserve = reserve
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # marks the journal live for other gateways
        self.offset = _records_end(self._fd)  # 0 for a new journal (the name is the process's own)
        self._map: mmap.mmap | None = None
        self._base = 0  # the file offset of the mapping's first byte
        self._limit = 0  # the file offset just past the mapping

    @property
    def name(self) -> str:
        return self.path.name

    def append(self, data: bytes) -> int:
        """Copy ``data`` (whole records) into the journal; return the offset just past it. Raises OSError when
        space cannot be reserved (a full disk, a file size limit)."""
        end = self.offset + len(data)
        if end > self._limit:
            self._extend(end)
        _publish(self._map, self.offset - self._base, data)
        if self.fsync:
            os.fsync(self._fd)  # writes back the mapping's dirty pages, as it would a write's
        self.offset = end
        return end

    def _extend(self, end: int) -> None:
        """Reserve and map the space from the current offset to at least ``end``."""
        base = self.offset - self.offset % mmap.ALLOCATIONGRANULARITY
        size = max(self.reserve, end - base)
        size += -size % mmap.PAGESIZE
        _reserve(self._fd, base, size)  # ENOSPC / EFBIG here, before anything is copied
        mapping = mmap.mmap(self._fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE,
                            offset=base)
        with contextlib.suppress(OSError, ValueError):  # an older kernel: pages fault in as first written
            mapping.madvise(_MADV_POPULATE_WRITE)
        old, self._map, self._base, self._limit = self._map, mapping, base, base + size
        if old is not None:
            old.close()

    def close(self, *, remove: bool) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if not remove:
            os.ftruncate(self._fd, self.offset)  # the unused reserve goes: a leftover journal ends at its records
        os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)


def _reserve(fd: int, offset: int, length: int) -> None:
    """Give the file real blocks for [offset, offset + length): a copy into the mapping can then never meet a full
    disk (which a mapping reports as SIGBUS). Where ``posix_fallocate`` is missing (macOS), by writing zeros past
    the file's end (never over records), which the journal's readers take as its end."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        fallocate(fd, offset, length)
        return
    pos, end = max(offset, os.fstat(fd).st_size), offset + length
    zeros = bytes(min(max(end - pos, 0), 1 << 16))
    while pos < end:
        pos += os.pwrite(fd, zeros[: end - pos], pos)


def _records_end(fd: int) -> int:
    """The offset just past the complete records of an existing journal file (0 for an empty one)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    data = os.pread(fd, size, 0)
    pos = 0
    while True:
        writes, pos = decode(data, pos)
        if not writes:
            return pos


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
