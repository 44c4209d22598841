"""An append-only journal file: the audit record is durable here before the client hears of the statement.

Writing one line per batch with ``os.write`` costs a few microseconds and survives a crash of the gateway process
(the bytes are in the kernel); with ``fsync`` it also survives a crash of the machine, at the price of a disk
flush per batch. The store is filled from memory by the recorder's thread; the journal only matters after a
crash, when ``replay`` hands the records the store never got to the next start.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..store.db import Write

SUFFIX = ".journal"


def encode(writes: list[Write]) -> bytes:
    return b"".join(
        json.dumps([w.table, w.key, w.values], separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
        for w in writes
    )


def decode_line(line: bytes) -> Write:
    table, key, values = json.loads(line)
    return Write(str(table), _dict(values), key if key is None else str(key))


def _dict(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError("journal record values must be an object")
    return v


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
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
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
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # another gateway beside us is writing it
        finally:
            os.close(fd)
        yield path
