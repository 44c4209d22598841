"""Types of the C extension ``wardgate.protocols.postgres._framing`` (source: ``_framing.c`` beside this file).

The framing loop of :meth:`wardgate.protocols.postgres.framing.FrameReader.feed_runs` (its specification,
``framing._frames_py``) in one call.
"""

def frames(
    buf: bytes | bytearray | memoryview, run_type: int, limit: int, /
) -> tuple[list[tuple[int, bytes, int]], int]:
    """The whole messages of ``buf`` as ``(type, bytes, count)`` (consecutive ``run_type`` messages merged) and
    the offset after the last one. Raises ``ValueError(type, length)`` for a length below 4 or above ``limit``."""
