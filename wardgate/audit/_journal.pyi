"""Types of the C extension ``wardgate.audit._journal`` (source: ``_journal.c`` beside this file, which documents
the compact record form).

The audit journal's record encoding (:mod:`wardgate.audit.journal`): a batch of records framed in one call.
"""

from typing import Any

def encode(records: list[tuple[str, str | None, Any]], /) -> bytes:
    """The journal bytes of ``records``: each framed as length | crc32 | payload, the payload compact where the
    record allows, else ``marshal.dumps(record)``. Raises ``ValueError`` as ``marshal.dumps`` does."""

def decode_payload(buf: bytes | bytearray | memoryview, /) -> Any:
    """The record of a compact payload (first byte 0). Raises ``ValueError`` for bytes ``encode`` did not write."""
