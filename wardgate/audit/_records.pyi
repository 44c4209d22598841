"""Types of the C extension ``wardgate.audit._records`` (source: ``_records.c`` beside this file, which documents
the journal's compact record form and which values the chain's encoder writes).

Audit records encoded in C: for the journal (:mod:`wardgate.audit.journal`), a batch of records framed in one call;
for the hash chain (:mod:`wardgate.audit.chain`), a positional record's canonical JSON; for the SQLite store
(:mod:`wardgate.store.db`), a batch's times as the text it keeps.
"""

from collections.abc import Callable
from typing import Any

def encode(records: list[tuple[str, str | None, Any]], /) -> bytes:
    """The journal bytes of ``records``: each framed as length | checksum | payload, the payload compact (first
    byte 1, checked by CRC-32C) where the record allows, else ``marshal.dumps(record)`` (checked by zlib's CRC-32).
    Raises ``ValueError`` as ``marshal.dumps`` does."""

def crc32c(buf: bytes | bytearray | memoryview, portable: bool = False, /) -> int:
    """The CRC-32C (Castagnoli) of ``buf``; ``portable``: the byte table's answer even where the CPU's crc32
    instruction is used."""

def crc32c_hardware() -> bool:
    """Whether ``crc32c`` uses the CPU's crc32 instruction (SSE4.2) here."""

def decode_payload(buf: bytes | bytearray | memoryview, /) -> Any:
    """The record of a compact payload (first byte 1, or 0 as written until 2026-12-07). Raises ``ValueError`` for
    bytes ``encode`` did not write."""

def insert_text(table: str, values: tuple[object, ...], at: int, replacement: object, /) -> str | None:
    """``chain.canonical(table, None, values)`` with ``values[at]`` replaced by ``replacement`` (when ``at`` >= 0),
    or None when a value is not an exact str, int (int64), finite float, bool or None."""

def sqlite_rows(rows: list[tuple[Any, ...]], slots: list[int], convert: Callable[[Any], Any],
                /) -> list[tuple[Any, ...]]:
    """The rows with the value at each index in ``slots`` as SQLite keeps a time: ``store.db.sqlite_time``'s text
    for an exact float or int of epoch seconds in years 1970-9999, None and str as they are, ``convert(value)``
    for anything else (a datetime, a negative time, one whose microseconds round up to the next second)."""

def publish(buffer: Any, offset: int, data: bytes, /) -> None:
    """Copy ``data`` (whole journal records) into the writable ``buffer`` at ``offset``, the first record's length
    word last, after a release fence, so a concurrent reader that sees that length nonzero sees the whole batch.
    Raises ``ValueError`` when ``data`` holds no record header or does not fit."""
