"""Frames -> messages, for the few message types the gateway must read.

Every decoder takes a whole frame (type byte and length included) and raises ``ProtocolViolation`` on
malformed input, so a hostile client can never turn a decoding bug into a crash.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Final

from .framing import ProtocolViolation
from .messages import (
    CANCEL_REQUEST_CODE,
    DATA_ROW,
    GSSENC_REQUEST_CODE,
    SSL_REQUEST_CODE,
    AuthRequest,
    Bind,
    CancelRequest,
    Close,
    ErrorFields,
    Execute,
    Field,
    GSSENCRequest,
    Parse,
    SSLRequest,
    StartupMessage,
    StartupPacket,
)

_H = struct.Struct("!h")
_I = struct.Struct("!i")
_II = struct.Struct("!ii")


class _Cursor:
    """A read position over one message body; every read is bounds-checked."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, start: int) -> None:
        self.data = data
        self.pos = start
        self.end = len(data)

    def cstring(self) -> str:
        nul = self.data.find(b"\0", self.pos)
        if nul < 0:
            raise ProtocolViolation("unterminated string in message")
        raw = self.data[self.pos : nul]
        self.pos = nul + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolViolation("invalid UTF-8 in message string") from exc

    def int16(self) -> int:
        if self.pos + 2 > self.end:
            raise ProtocolViolation("message too short")
        (v,) = _H.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(v)

    def int32(self) -> int:
        if self.pos + 4 > self.end:
            raise ProtocolViolation("message too short")
        (v,) = _I.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(v)

    def count(self) -> int:
        n = self.int16()
        if n < 0:
            raise ProtocolViolation("negative count in message")
        return n

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise ProtocolViolation("message too short")
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def done(self) -> None:
        if self.pos != self.end:
            raise ProtocolViolation("trailing bytes in message")


def startup_packet(packet: bytes) -> StartupPacket:
    """Decode the untyped first packet (length included)."""
    if len(packet) < 8:
        raise ProtocolViolation("startup packet too short")
    (code,) = _I.unpack_from(packet, 4)
    if code == SSL_REQUEST_CODE and len(packet) == 8:
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE and len(packet) == 8:
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        if len(packet) != 16:
            raise ProtocolViolation("malformed cancel request")
        pid, secret = _II.unpack_from(packet, 8)
        return CancelRequest(pid, secret)
    major, minor = code >> 16, code & 0xFFFF
    if major != 3:
        raise ProtocolViolation(f"unsupported frontend protocol {major}.{minor}: only 3.x is supported")
    cur = _Cursor(packet, 8)
    params: dict[str, str] = {}
    while True:
        key = cur.cstring()
        if key == "":
            break
        params[key] = cur.cstring()
    cur.done()
    return StartupMessage(major, minor, params)


def query(frame: bytes) -> str:
    cur = _Cursor(frame, 5)
    text = cur.cstring()
    cur.done()
    return text


def password(frame: bytes) -> bytes:
    """The body of a PasswordMessage, without the terminating NUL when there is one."""
    body = frame[5:]
    return body[:-1] if body.endswith(b"\0") else body


# Parse, Bind and Execute arrive for every extended-protocol statement, so they are decoded with straight-line
# code (no cursor object, one struct call per array); every malformed input still ends in ProtocolViolation.
_MALFORMED = (ValueError, IndexError, struct.error)


def _cstr(frame: bytes, pos: int) -> tuple[str, int]:
    if frame[pos] == 0:  # the unnamed statement or portal, which most clients use: no search, no decode
        return "", pos + 1
    nul = frame.index(0, pos)
    return frame[pos:nul].decode("utf-8"), nul + 1


def _count(frame: bytes, pos: int) -> int:
    """A non-negative int16 (bytes indexed one by one: compiled, that is a C array read, not a struct call)."""
    if pos + 2 > len(frame):
        raise ValueError("message too short")
    high = frame[pos]
    if high & 0x80:
        raise ValueError("negative count")
    return (high << 8) | frame[pos + 1]


def parse(frame: bytes) -> Parse:
    try:
        name, pos = _cstr(frame, 5)
        text, pos = _cstr(frame, pos)
        n = _count(frame, pos)
        types = struct.unpack_from(f"!{n}I", frame, pos + 2)
        if pos + 2 + 4 * n != len(frame):
            raise ValueError("trailing bytes")
    except _MALFORMED as exc:
        raise ProtocolViolation(f"malformed Parse message: {exc}") from None
    return Parse(name, text, types)


def bind(frame: bytes) -> Bind:
    try:
        portal, pos = _cstr(frame, 5)
        statement, pos = _cstr(frame, pos)
        n = _count(frame, pos)
        formats = struct.unpack_from(f"!{n}h", frame, pos + 2)
        pos += 2 + 2 * n
        spans, pos = _value_spans(frame, pos, len(frame))
        params = [None if sp is None else frame[sp[0] : sp[1]] for sp in spans]
        n = _count(frame, pos)
        result_formats = struct.unpack_from(f"!{n}h", frame, pos + 2)
        if pos + 2 + 2 * n != len(frame):
            raise ValueError("trailing bytes")
    except _MALFORMED as exc:
        raise ProtocolViolation(f"malformed Bind message: {exc}") from None
    return Bind(portal, statement, formats, tuple(params), result_formats)


def bind_target(frame: bytes) -> tuple[str, str, int]:
    """A Bind's portal, statement and parameter count: all a relay needs of it, without copying any value.

    The parameter values are the server's to check (it rejects a malformed Bind with an error of its own); what
    is read here is still validated, so a malformed prefix is a ProtocolViolation like everywhere else.
    """
    try:
        portal, pos = _cstr(frame, 5)
        statement, pos = _cstr(frame, pos)
        pos += 2 + 2 * _count(frame, pos)
        n = _count(frame, pos)
    except _MALFORMED as exc:
        raise ProtocolViolation(f"malformed Bind message: {exc}") from None
    return portal, statement, n


_PARSE_CACHE: Final[dict[bytes, tuple[str, str]]] = {}  # Final: a C static, not a lookup by name (decide.py)
_PARSE_CACHE_ENTRIES: Final = 4096
_PARSE_CACHE_FRAME: Final = 8192


def parse_target(frame: bytes) -> tuple[str, str]:
    """A Parse's statement name and text, as ``parse`` reads them (and refuses what it refuses), remembered by
    frame: applications send the same few Parse messages over and over. A tuple, not the ``Parse``: compiled, a
    tuple's items are read natively, a field of the interpreted ``Parse`` by name (~160 instructions each)."""
    p = _PARSE_CACHE.get(frame)
    if p is None:
        full = parse(frame)
        p = (full.name, full.query)
        if len(frame) <= _PARSE_CACHE_FRAME:
            if len(_PARSE_CACHE) >= _PARSE_CACHE_ENTRIES:
                _PARSE_CACHE.clear()
            _PARSE_CACHE[frame] = p
    return p


def execute(frame: bytes) -> Execute:
    portal = execute_portal(frame)
    (max_rows,) = _I.unpack_from(frame, len(frame) - 4)
    return Execute(portal, int(max_rows))


def execute_portal(frame: bytes) -> str:
    """An Execute's portal, validated: all the relay needs of it (its row limit is the server's business)."""
    try:
        portal, pos = _cstr(frame, 5)
    except _MALFORMED as exc:
        raise ProtocolViolation(f"malformed Execute message: {exc}") from None
    if pos + 4 != len(frame):
        raise ProtocolViolation("malformed Execute message: " + ("trailing bytes" if pos + 4 < len(frame)
                                                                 else "no row limit"))
    return portal


def close(frame: bytes) -> Close:
    cur = _Cursor(frame, 5)
    kind = cur.raw(1).decode("latin-1")
    if kind not in ("S", "P"):
        raise ProtocolViolation(f"invalid Close target {kind!r}")
    name = cur.cstring()
    cur.done()
    return Close(kind, name)


def error_fields(frame: bytes) -> ErrorFields:
    """Fields of an ErrorResponse/NoticeResponse; lenient about text encoding, since servers send them."""
    fields: dict[str, str] = {}
    body = frame[5:]
    pos = 0
    while pos < len(body) and body[pos] != 0:
        nul = body.find(b"\0", pos + 1)
        if nul < 0:
            raise ProtocolViolation("unterminated error field")
        fields[chr(body[pos])] = body[pos + 1 : nul].decode("utf-8", "replace")
        pos = nul + 1
    return ErrorFields(fields)


def raw_fields(frame: bytes) -> list[tuple[int, bytes]]:
    """The (code, value) fields of an ErrorResponse/NoticeResponse as bytes, in order, for rewriting them."""
    out: list[tuple[int, bytes]] = []
    pos = 5
    end = len(frame)
    while pos < end and frame[pos] != 0:
        nul = frame.find(b"\0", pos + 1)
        if nul < 0:
            raise ProtocolViolation("unterminated error field")
        out.append((frame[pos], frame[pos + 1 : nul]))
        pos = nul + 1
    if pos != end - 1:
        raise ProtocolViolation("malformed error or notice fields")
    return out


def notification(frame: bytes) -> tuple[int, bytes, bytes]:
    """A NotificationResponse: the notifying backend's pid, the channel and the payload (raw bytes)."""
    try:
        (pid,) = _I.unpack_from(frame, 5)
        channel_end = frame.index(0, 9)
        payload_end = frame.index(0, channel_end + 1)
    except (struct.error, ValueError):
        raise ProtocolViolation("malformed NotificationResponse") from None
    if payload_end != len(frame) - 1:
        raise ProtocolViolation("malformed NotificationResponse")
    return pid, frame[9:channel_end], frame[channel_end + 1 : payload_end]


def describe(frame: bytes) -> tuple[str, str]:
    """A Describe's target: ("S", statement) or ("P", portal)."""
    if len(frame) < 6:
        raise ProtocolViolation("message too short")
    target = frame[5]
    if target not in (83, 80):  # "S", "P"
        raise ProtocolViolation(f"invalid Describe target {chr(target)!r}")
    try:
        name, pos = _cstr(frame, 6)
    except IndexError:
        raise ProtocolViolation("unterminated string in message") from None
    except ValueError:
        # no NUL after the name, or a name that is not UTF-8
        if frame.find(0, 6) < 0:
            raise ProtocolViolation("unterminated string in message") from None
        raise ProtocolViolation("invalid UTF-8 in message string") from None
    if pos != len(frame):
        raise ProtocolViolation("trailing bytes in message")
    return "S" if target == 83 else "P", name


def command_tag(frame: bytes) -> str:
    """The tag of a CommandComplete (trailing NULs dropped). Indexing, not ``rstrip``: compiled, a byte test is
    native where a method of bytes is a call by name (this runs once per statement)."""
    end = len(frame)
    while end > 5 and frame[end - 1] == 0:
        end -= 1
    return frame[5:end].decode("utf-8", "replace")


def ready_status(frame: bytes) -> str:
    if len(frame) != 6:
        raise ProtocolViolation("malformed ReadyForQuery")
    return chr(frame[5])


def auth_request(frame: bytes) -> AuthRequest:
    cur = _Cursor(frame, 5)
    code = cur.int32()
    return AuthRequest(code, frame[cur.pos :])


def parameter_status(frame: bytes) -> tuple[str, str]:
    cur = _Cursor(frame, 5)
    name = cur.cstring()
    value = cur.cstring()
    return name, value


def backend_key(frame: bytes) -> tuple[int, int]:
    if len(frame) != 13:
        raise ProtocolViolation("malformed BackendKeyData")
    pid, secret = _II.unpack_from(frame, 5)
    return int(pid), int(secret)


def sasl_mechanisms(data: bytes) -> list[str]:
    return [m.decode("ascii", "replace") for m in data.split(b"\0") if m]


def tag_rows(frame: bytes) -> int:
    """Row count carried by a CommandComplete's tag (``SELECT 3``, ``INSERT 0 5``, ``COPY 7``), or -1 when it has
    none: the ASCII digits after its last space, read from the frame's bytes back from the end (trailing NULs
    skipped). Bytes, not the decoded tag: compiled, each byte is a native int, where each character of a str is a
    new object and a comparison by call (~1,300 instructions a statement). A count is at most 20 digits (the
    server's is 64-bit): a longer run is no count, rather than a number of unbounded size."""
    end = len(frame)
    while end > 5 and frame[end - 1] == 0:
        end -= 1
    i = end
    while i > 5 and 48 <= frame[i - 1] <= 57:
        i -= 1
    if i == end or i <= 5 or frame[i - 1] != 32 or end - i > 20:
        return -1
    n = 0
    while i < end:
        n = n * 10 + (frame[i] - 48)
        i += 1
    return n


def function_call(frame: bytes) -> tuple[int, int]:
    """The function OID and the number of arguments of a FunctionCall."""
    cur = _Cursor(frame, 5)
    oid = cur.int32() & 0xFFFFFFFF
    for _ in range(cur.count()):
        cur.int16()
    return oid, cur.count()


_FIELD = struct.Struct("!IhIhih")


def row_description(frame: bytes) -> tuple[Field, ...]:
    """The columns of a RowDescription."""
    cur = _Cursor(frame, 5)
    fields = []
    for _ in range(cur.count()):
        name = cur.cstring()
        table_oid, column, type_oid, type_size, type_mod, fmt = _FIELD.unpack(cur.raw(_FIELD.size))
        fields.append(Field(name, table_oid, column, type_oid, type_size, type_mod, fmt))
    cur.done()
    return tuple(fields)


def _value_spans(buf: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[list[tuple[int, int] | None], int]:
    """A count and that many length-prefixed values (length -1: NULL), as in Bind and DataRow: each value's
    (start, end) in ``buf`` and the offset after the last. Raises ValueError/struct.error when malformed."""
    (n,) = _H.unpack_from(buf, pos)
    if n < 0:
        raise ValueError("negative count")
    at = pos + 2
    spans: list[tuple[int, int] | None] = []
    unpack = _I.unpack_from
    for _ in range(n):
        (size,) = unpack(buf, at)
        at += 4
        if size == -1:
            spans.append(None)
            continue
        if size < 0 or at + size > end:
            raise ValueError("invalid value length")
        spans.append((at, at + size))
        at += size
    return spans, at


def data_row_spans(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[list[tuple[int, int] | None], int]:
    """The value spans of the DataRow message at ``pos`` in ``buf`` (offsets in ``buf``; None for NULL) and the
    offset just past the message. Works on a run of DataRows in place: nothing is copied, so a masker can rewrite
    a value where it lies."""
    try:
        if buf[pos] != DATA_ROW:
            raise ValueError("not a DataRow")
        (length,) = _I.unpack_from(buf, pos + 1)
        end = pos + 1 + length
        if length < 6 or end > len(buf):
            raise ValueError("invalid DataRow length")
        spans, at = _value_spans(buf, pos + 5, end)
        if at != end:
            raise ValueError("trailing bytes")
    except _MALFORMED as exc:
        raise ProtocolViolation(f"malformed DataRow message: {exc}") from None
    return spans, end


def data_row_walk(buf: bytes, columns: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Walk a run of DataRows: ``rows`` holds each row's start and end; ``offsets`` holds, per row and per column
    of ``columns`` in that order, the value's start and end in ``buf`` (-1, -1 for NULL). The C version in
    ``_datarow`` does the same in one call; this is its specification."""
    rows: list[int] = []
    offsets: list[int] = []
    pos = 0
    end = len(buf)
    while pos < end:
        spans, row_end = data_row_spans(buf, pos)
        rows += (pos, row_end)
        for c in columns:
            if c >= len(spans):
                raise ProtocolViolation("malformed DataRow message: fewer values than the result has columns")
            sp = spans[c]
            offsets += (-1, -1) if sp is None else sp
        pos = row_end
    return rows, offsets


def data_rows_may_match(buf: bytes, columns: Sequence[int], skips: Sequence[int],
                        test: Callable[[memoryview], bool]) -> bool:
    """Does ``test`` hold for the value at ``columns[k]`` of any row, after its first ``skips[k]`` bytes (NULLs and
    values no longer than their skip are not tested)? Rows are read in order up to the first that passes, each
    checked whole first. Result masking asks this of every result with ``test`` its prefilter, reading only the
    columns it would scan; the C version (``_datarow.may_match``, the prefilter built in) is held to this."""
    view = memoryview(buf)
    pos = 0
    end = len(buf)
    while pos < end:
        spans, row_end = data_row_spans(buf, pos)
        if any(c < 0 or c >= len(spans) for c in columns):
            raise ProtocolViolation("malformed DataRow message: fewer values than the result has columns")
        for c, skip in zip(columns, skips, strict=True):
            sp = spans[c]
            if sp is not None and sp[0] + skip < sp[1] and test(view[sp[0] + skip : sp[1]]):
                return True
        pos = row_end
    return False


def data_row(frame: bytes) -> tuple[bytes | None, ...]:
    """The values of one DataRow (None for NULL)."""
    spans, _ = data_row_spans(frame)
    return tuple(None if s is None else frame[s[0] : s[1]] for s in spans)


_walk_native: Callable[[bytes, tuple[int, ...]], tuple[list[int], list[int]]] | None
try:
    from ._datarow import walk as _walk_native
except ImportError:  # not built: the Python walk does the work
    _walk_native = None


def walk_rows(buf: bytes, columns: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """:func:`data_row_walk`, in C when built (a malformed run is a ProtocolViolation either way)."""
    if _walk_native is None:
        return data_row_walk(buf, columns)
    try:
        return _walk_native(buf, columns)
    except ValueError as exc:
        raise ProtocolViolation(f"malformed DataRow message: {exc}") from None


_may_match_native: Callable[[bytes, Sequence[int], Sequence[int], int], bool] | None
try:
    from ._datarow import may_match as _may_match_native
except ImportError:  # not built: the Python body does the work
    _may_match_native = None


def rows_may_match(buf: bytes, columns: Sequence[int], skips: Sequence[int], bits: int,
                   test: Callable[[memoryview], bool]) -> bool:
    """:func:`data_rows_may_match`; in C when built and ``bits`` (the built-in detectors of the prefilter that
    ``test`` is, see ``Prefilter.native_bits``) is not 0."""
    if _may_match_native is None or not bits:
        return data_rows_may_match(buf, columns, skips, test)
    try:
        return _may_match_native(buf, columns, skips, bits)
    except ValueError as exc:
        raise ProtocolViolation(f"malformed DataRow message: {exc}") from None
