"""Types of the C extension ``wardgate.audit._records`` (source: ``_records.c`` beside this file, which documents
the journal's compact record form and which values the chain's encoder writes).

Audit records encoded in C: for the journal (:mod:`wardgate.audit.journal`), a batch of records framed in one call;
for the hash chain (:mod:`wardgate.audit.chain`), a positional record's canonical JSON; for the SQLite store
(:mod:`wardgate.store.db`), a batch's times as the text it keeps.
"""

from collections.abc import Callable
from typing import Any

def encode(records: list[tuple[str, str | None, Any]], /) -> bytes:
    """The journal bytes of ``records``: each framed as length | crc32 | payload, the payload compact where the
    record allows, else ``marshal.dumps(record)``. Raises ``ValueError`` as ``marshal.dumps`` does."""

def decode_payload(buf: bytes | bytearray | memoryview, /) -> Any:
    """The record of a compact payload (first byte 0). Raises ``ValueError`` for bytes ``encode`` did not write."""

def insert_text(table: str, values: tuple[object, ...], at: int, replacement: object, /) -> str | None:
    """``chain.canonical(table, None, values)`` with ``values[at]`` replaced by ``replacement`` (when ``at`` >= 0),
    or None when a value is not an exact str, int (int64), finite float, bool or None."""

def sqlite_rows(rows: list[tuple[Any, ...]], slots: list[int], convert: Callable[[Any], Any],
                /) -> list[tuple[Any, ...]]:
    """The rows with the value at each index in ``slots`` as SQLite keeps a time: ``store.db.sqlite_time``'s text
    for an exact float or int of epoch seconds in years 1970-9999, None and str as they are, ``convert(value)``
    for anything else (a datetime, a negative time, one whose microseconds round up to the next second)."""
