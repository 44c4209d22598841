"""Records as JSON lines in a file that rotates itself by size.

The line is exactly what `wardgate audit export --format jsonl` writes for the record. When the next line would
take the file past ``max_bytes`` it is renamed ``PATH.1`` (the previous ``.1`` becomes ``.2``, and so on; the
one past ``keep`` is deleted) and a new file is started, so a log collector tailing ``PATH`` by name follows it,
and nothing outside wardgate (logrotate) has to be told which process to signal. Files are created 0600: the
records name users and what they ran.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ...config import FileSinkConfig
from .delivery import SinkError
from .records import SinkRecord


def rotated(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def rotation_plan(path: Path, keep: int) -> list[tuple[Path, Path | None]]:
    """The renames that rotate ``path``, in the order to run them: (source, destination); None deletes."""
    if keep == 0:
        return [(path, None)]
    plan: list[tuple[Path, Path | None]] = [(rotated(path, keep), None)]
    plan += [(rotated(path, n), rotated(path, n + 1)) for n in range(keep - 1, 0, -1)]
    plan.append((path, rotated(path, 1)))
    return plan


class FileTransport:
    batch_size = 1000
    linger = 0.0
    retries: int | None = None  # a full or unwritable disk is waited for; the backlog bounds the wait
    backoff = 0.5

    def __init__(self, cfg: FileSinkConfig) -> None:
        self.cfg = cfg
        self.path = cfg.path
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(fd).st_size
        return fd

    def _rotate(self) -> None:
        self.close()
        for src, dst in rotation_plan(self.path, self.cfg.keep):
            if dst is None:
                src.unlink(missing_ok=True)
            elif src.exists():
                os.replace(src, dst)
        self._fd = self._open()

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def send(self, batch: Sequence[SinkRecord]) -> None:
        sent = 0
        try:
            if self._fd is None:
                self._fd = self._open()
            chunk: list[bytes] = []
            chunk_size = 0
            for rec in batch:
                line = rec.line.encode() + b"\n"
                if chunk_size + len(line) + self._size > self.cfg.max_bytes and chunk_size + self._size > 0:
                    if chunk:
                        self._write(b"".join(chunk))
                        sent += len(chunk)
                        chunk, chunk_size = [], 0
                    self._rotate()
                chunk.append(line)
                chunk_size += len(line)
            if chunk:
                self._write(b"".join(chunk))
            sent = len(batch)  # written; a failing fsync below must not have them written twice
            if self.cfg.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self.close()
            raise SinkError(f"{self.path}: {exc.strerror or exc}", sent=sent) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
