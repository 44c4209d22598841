"""Turn a byte stream into whole protocol frames, with size limits.

A frame is returned as ``(type, frame_bytes)`` where ``frame_bytes`` is the whole message, header included, so
that a relay can forward it untouched. Reading stays in one place so that every path gets the same limits.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from typing import Final

_U32 = Struct("!I")

# PostgreSQL itself refuses startup packets above this length (MAX_STARTUP_PACKET_LENGTH).
MAX_STARTUP_BYTES = 10_000
# The server's own ceiling for one message (PQ_LARGE_MESSAGE_LIMIT is 1 GB).
MAX_BACKEND_MESSAGE_BYTES = 1 << 30


class ProtocolViolation(Exception):
    """The peer sent bytes that are not a valid message; the connection must be closed (SQLSTATE 08P01)."""


NO_RUNS: Final = -1  # a run_type no frame has


def _bad_length(kind: int, length: int, limit: int) -> ProtocolViolation:
    if length < 4:
        return ProtocolViolation(f"invalid message length {length} for message type {chr(kind)!r}")
    return ProtocolViolation(f"message of {length} bytes exceeds the limit of {limit} bytes")


def _frames_py(buf: bytes | bytearray, run_type: int, limit: int,
               memo: list[object] | None = None) -> tuple[list[tuple[int, bytes, int]], int]:
    """The framing loop (the specification of ``_framing.frames``): every whole message of ``buf`` as
    ``(type, bytes, count)``, consecutive ``run_type`` messages merged, and the offset after the last one.
    Raises ``ValueError(type, length)`` for a length below 4 or above ``limit``. ``memo`` is the C loop's
    (a repeated message returned as the same object: equal values either way), ignored here."""
    out: list[tuple[int, bytes, int]] = []
    pos = 0
    end = len(buf)
    unpack = _U32.unpack_from
    run_start = -1
    run_count = 0
    while end - pos >= 5:
        (length,) = unpack(buf, pos + 1)
        if length < 4 or length > limit:
            raise ValueError(buf[pos], length)
        stop = pos + 1 + length
        if stop > end:
            break
        kind = buf[pos]
        if kind == run_type:
            if run_start < 0:
                run_start = pos
            run_count += 1
        else:
            if run_start >= 0:
                out.append((run_type, bytes(buf[run_start:pos]), run_count))
                run_start, run_count = -1, 0
            out.append((kind, bytes(buf[pos:stop]), 1))
        pos = stop
    if run_start >= 0:
        out.append((run_type, bytes(buf[run_start:pos]), run_count))
    return out, pos


_Frames = Callable[[bytes | bytearray, int, int, list[object] | None], tuple[list[tuple[int, bytes, int]], int]]


def _loop() -> tuple[_Frames, int]:
    """The C loop and its memo's length; the Python loop (no memo) where the C one is not built."""
    try:
        from ._framing import frames, memo_slots
    except ImportError:
        return _frames_py, 0
    return frames, memo_slots()


# Final: compiled, a C static each, not a lookup by name at every read (policy/decide.py says more)
_LOOP: Final = _loop()
_frames: Final = _LOOP[0]
_MEMO_SLOTS: Final = _LOOP[1]


class FrameReader:
    """Accumulates bytes and yields whole typed frames.

    The buffer only ever holds one incomplete frame plus what arrived with it, so memory per connection is
    bounded by ``max_message`` and the transport's read size. The common case (a read holding whole frames)
    slices the received bytes directly; a frame spread over many reads is gathered in a bytearray, so a large
    message costs linear, not quadratic, time.
    """

    __slots__ = ("_buf", "_memo", "max_message")

    def __init__(self, max_message: int) -> None:
        self._buf = bytearray()
        self.max_message = max_message
        # the last message of each type that repeats in an exchange (``_framing.frames``): a statement run again
        # comes back as the same objects, so nothing is allocated for it and what was decoded from it is reused
        self._memo: list[object] = [None] * _MEMO_SLOTS

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add ``data`` and return every frame now complete, in order."""
        return [(kind, frame) for kind, frame, _ in self.feed_runs(data, NO_RUNS)]

    def feed_runs(self, data: bytes, run_type: int) -> list[tuple[int, bytes, int]]:
        """Every frame now complete, as ``(type, bytes, count)``; consecutive frames of ``run_type`` come back
        as one entry (``NO_RUNS``: none are merged).

        A relay passes result rows through untouched; handing them over a run at a time, not a row at a time,
        spares a slice, a tuple and a join per row.
        """
        if self._buf:
            self._buf += data
            buf: bytes | bytearray = self._buf
        else:
            buf = data
        try:
            out, pos = _frames(buf, run_type, self.max_message, self._memo)
        except ValueError as exc:
            self._buf = bytearray()
            kind, length = exc.args
            raise _bad_length(kind, length, self.max_message) from None
        end = len(buf)
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < end:
            self._buf = bytearray(buf[pos:])
        return out

    def take_rest(self) -> bytes:
        """Hand over unparsed bytes (used when switching readers); the reader is left empty."""
        rest, self._buf = bytes(self._buf), bytearray()
        return rest


class StartupReader:
    """Reads the one untyped packet a client opens with (startup, SSL/GSS request or cancel request)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> bytes | None:
        """Return the whole packet (length included) once complete, else ``None``."""
        self._buf += data
        if len(self._buf) < 4:
            return None
        (length,) = _U32.unpack_from(self._buf, 0)
        if length < 8 or length > MAX_STARTUP_BYTES:
            raise ProtocolViolation(f"invalid startup packet length {length}")
        if len(self._buf) < length:
            return None
        packet, self._buf = self._buf[:length], self._buf[length:]
        return packet

    def take_rest(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest
