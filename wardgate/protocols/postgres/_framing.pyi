"""Types of the C extension ``wardgate.protocols.postgres._framing`` (source: ``_framing.c`` beside this file).

The framing loop of :meth:`wardgate.protocols.postgres.framing.FrameReader.feed_runs` (its specification,
``framing._frames_py``) in one call.
"""

def frames(
    buf: bytes | bytearray | memoryview, run_type: int, limit: int, memo: list[object] | None = None, /
) -> tuple[list[tuple[int, bytes, int]], int]:
    """The whole messages of ``buf`` as ``(type, bytes, count)`` (consecutive ``run_type`` messages merged) and
    the offset after the last one. Raises ``ValueError(type, length)`` for a length below 4 or above ``limit``.
    With ``memo`` (``memo_slots()`` entries, one reader's own), a message that repeats byte for byte the last one
    of its type (up to 1 KiB, for the types that repeat in an exchange) comes back as that same entry."""

def memo_slots() -> int:
    """The length of the ``memo`` list ``frames`` takes."""
