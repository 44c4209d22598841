"""Hostile bytes against the sans-IO codec: valid frames, then mutated (flipped, truncated, spliced, re-lengthed).

The contract (decode.py's docstring): every decoder and the frame reader either return a value or raise
``ProtocolViolation``; any other exception (struct.error, IndexError, UnicodeDecodeError, ValueError...) is a
bug, because the front-end would turn it into an "internal error" instead of a clean 08P01.

Unmutated frames must also decode to exactly what was encoded, so these tests can fail on wrong answers too,
not only on exceptions.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wardgate.protocols.postgres import decode, encode
from wardgate.protocols.postgres import messages as m
from wardgate.protocols.postgres.framing import FrameReader, ProtocolViolation, StartupReader

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _frame(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _cstr(s: str) -> bytes:
    return s.encode("utf-8") + b"\0"


# --- valid frames ----------------------------------------------------------------------------------------------

text_chars = st.characters(exclude_characters="\0", exclude_categories=["Cs"])  # what a C string can hold
names = st.text(alphabet=text_chars, max_size=12)
texts = st.text(alphabet=text_chars, max_size=60)
int16s = st.integers(min_value=-(2**15), max_value=2**15 - 1)
int32s = st.integers(min_value=-(2**31), max_value=2**31 - 1)
uint32s = st.integers(min_value=0, max_value=2**32 - 1)
formats = st.lists(st.sampled_from([0, 1]), max_size=4)
param_values = st.lists(st.one_of(st.none(), st.binary(max_size=20)), max_size=4)


@st.composite
def query_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    text = draw(texts)
    return encode.query(text), text


@st.composite
def parse_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    name, text, types = draw(names), draw(texts), draw(st.lists(uint32s, max_size=5))
    body = _cstr(name) + _cstr(text) + struct.pack("!h", len(types)) + b"".join(struct.pack("!I", t) for t in types)
    return _frame(b"P", body), m.Parse(name, text, tuple(types))


@st.composite
def bind_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    portal, stmt = draw(names), draw(names)
    fmts, params, rfmts = draw(formats), draw(param_values), draw(formats)
    body = _cstr(portal) + _cstr(stmt) + struct.pack("!h", len(fmts)) + b"".join(struct.pack("!h", f) for f in fmts)
    body += struct.pack("!h", len(params))
    for p in params:
        body += struct.pack("!i", -1) if p is None else struct.pack("!i", len(p)) + p
    body += struct.pack("!h", len(rfmts)) + b"".join(struct.pack("!h", f) for f in rfmts)
    return _frame(b"B", body), m.Bind(portal, stmt, tuple(fmts), tuple(params), tuple(rfmts))


@st.composite
def execute_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    portal, max_rows = draw(names), draw(int32s)
    return _frame(b"E", _cstr(portal) + struct.pack("!i", max_rows)), m.Execute(portal, max_rows)


@st.composite
def describe_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    kind, name = draw(st.sampled_from("SP")), draw(names)
    return _frame(b"D", kind.encode() + _cstr(name)), None


@st.composite
def close_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    kind, name = draw(st.sampled_from("SP")), draw(names)
    return _frame(b"C", kind.encode() + _cstr(name)), m.Close(kind, name)


@st.composite
def function_call_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    oid, fmts, args = draw(uint32s), draw(formats), draw(param_values)
    body = struct.pack("!I", oid) + struct.pack("!h", len(fmts)) + b"".join(struct.pack("!h", f) for f in fmts)
    body += struct.pack("!h", len(args))
    for a in args:
        body += struct.pack("!i", -1) if a is None else struct.pack("!i", len(a)) + a
    body += struct.pack("!h", draw(st.sampled_from([0, 1])))
    return _frame(b"F", body), (oid, len(args))


@st.composite
def simple_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    kind = draw(st.sampled_from([b"S", b"H", b"c", b"X"]))  # Sync, Flush, CopyDone, Terminate: no body
    return _frame(kind, b""), None


@st.composite
def copy_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    if draw(st.booleans()):
        return _frame(b"d", draw(st.binary(max_size=80))), None  # CopyData
    return _frame(b"f", _cstr(draw(texts))), None  # CopyFail


@st.composite
def password_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    secret = draw(st.binary(max_size=40).filter(lambda b: b"\0" not in b))
    return encode.password_message(secret), secret


@st.composite
def error_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    fields = draw(st.dictionaries(st.sampled_from("SVCMDHPWFLR"), texts, max_size=6))
    body = b"".join(k.encode() + _cstr(v) for k, v in fields.items()) + b"\0"
    return _frame(draw(st.sampled_from([b"E", b"N"])), body), fields


@st.composite
def auth_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    code, data = draw(st.sampled_from([0, 3, 5, 10, 11, 12])), draw(st.binary(max_size=40))
    return _frame(b"R", struct.pack("!i", code) + data), m.AuthRequest(code, data)


@st.composite
def parameter_status_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    name, value = draw(names), draw(texts)
    return _frame(b"S", _cstr(name) + _cstr(value)), (name, value)


@st.composite
def backend_key_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    pid, secret = draw(int32s), draw(int32s)
    return _frame(b"K", struct.pack("!ii", pid, secret)), (pid, secret)


# Command tags whose row count is written in anything Python calls numeric (ASCII digits, other scripts' digits,
# superscripts, circled numbers, fractions...): `tag_rows` reads the count from server-sent bytes.
NUMERIC = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isnumeric())
counts = st.one_of(st.integers(min_value=0, max_value=10**12).map(str),
                   st.text(alphabet=st.sampled_from(NUMERIC), min_size=1, max_size=4))
verbs = st.sampled_from(["SELECT", "INSERT 0", "UPDATE", "DELETE", "COPY", "FETCH", "MOVE", "MERGE", "BEGIN",
                         "CREATE TABLE", ""])


@st.composite
def command_complete_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    verb = draw(verbs)
    tag = f"{verb} {draw(counts)}".strip() if draw(st.booleans()) else verb or draw(texts)
    return _frame(b"C", _cstr(tag)), tag


@st.composite
def ready_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    status = draw(st.sampled_from("ITE"))
    return _frame(b"Z", status.encode()), status


@st.composite
def data_row_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    cols = draw(param_values)
    body = struct.pack("!h", len(cols))
    for c in cols:
        body += struct.pack("!i", -1) if c is None else struct.pack("!i", len(c)) + c
    return _frame(b"D", body), tuple(cols)


@st.composite
def row_description_frames(draw: st.DrawFn) -> tuple[bytes, Any]:
    fields = draw(st.lists(st.builds(m.Field, names, uint32s, int16s, uint32s, int16s,
                                     st.integers(min_value=-(2**31), max_value=2**31 - 1), st.sampled_from([0, 1])),
                           max_size=4))
    body = struct.pack("!h", len(fields)) + b"".join(
        _cstr(f.name) + struct.pack("!IhIhih", f.table_oid, f.column, f.type_oid, f.type_size, f.type_mod, f.format)
        for f in fields)
    return _frame(b"T", body), tuple(fields)


FRONTEND = [query_frames(), parse_frames(), bind_frames(), execute_frames(), describe_frames(), close_frames(),
            function_call_frames(), simple_frames(), copy_frames(), password_frames()]
BACKEND = [error_frames(), auth_frames(), parameter_status_frames(), backend_key_frames(),
           command_complete_frames(), ready_frames(), data_row_frames(), row_description_frames()]
any_valid = st.one_of(*FRONTEND, *BACKEND)


# --- mutations -------------------------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, frames: st.SearchStrategy[tuple[bytes, Any]] = any_valid) -> bytes:
    """A valid frame (or two spliced), then up to four hostile edits."""
    data = bytearray(draw(frames)[0])
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        op = draw(st.sampled_from(["flip", "truncate", "length", "length_delta", "insert", "delete", "splice",
                                   "nul", "high"]))
        n = len(data)
        if op == "flip" and n:
            i = draw(st.integers(min_value=0, max_value=n - 1))
            data[i] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "truncate":
            del data[draw(st.integers(min_value=0, max_value=n)) :]
        elif op == "length" and n >= 5:
            data[1:5] = struct.pack("!I", draw(st.sampled_from([0, 1, 3, 4, 5, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
                                               | uint32s))
        elif op == "length_delta" and n >= 5:
            (length,) = struct.unpack_from("!I", data, 1)
            data[1:5] = struct.pack("!I", (length + draw(st.integers(min_value=-8, max_value=8))) & 0xFFFFFFFF)
        elif op == "insert":
            i = draw(st.integers(min_value=0, max_value=n))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and n:
            i = draw(st.integers(min_value=0, max_value=n - 1))
            del data[i : i + draw(st.integers(min_value=1, max_value=8))]
        elif op == "splice":  # the head of this frame glued to the tail of another
            other = draw(any_valid)[0]
            data = data[: draw(st.integers(min_value=0, max_value=n))] + other[
                draw(st.integers(min_value=0, max_value=len(other))) :]
        elif op == "nul" and n:  # a NUL where a string was, or none where one is needed
            i = draw(st.integers(min_value=0, max_value=n - 1))
            data[i] = 0 if data[i] else 0x41
        elif op == "high" and n:  # bytes that are not UTF-8 on their own
            i = draw(st.integers(min_value=0, max_value=n - 1))
            data[i] = draw(st.sampled_from([0x80, 0xC0, 0xC3, 0xE2, 0xED, 0xF4, 0xFF]))
    return bytes(data)


hostile = st.one_of(mutated(), st.binary(max_size=64))


def _only_violations(fn: Callable[[bytes], object], data: bytes) -> None:
    try:
        fn(data)
    except ProtocolViolation:
        pass
    except Exception as exc:
        raise AssertionError(
            f"{getattr(fn, '__name__', fn)}({data!r}) raised {type(exc).__module__}.{type(exc).__qualname__}: {exc}; "
            "only ProtocolViolation is allowed"
        ) from exc


# --- decoders ------------------------------------------------------------------------------------------------

DECODERS: list[Callable[[bytes], object]] = [
    decode.query, decode.parse, decode.parse_target, decode.bind, decode.bind_target, decode.execute, decode.close,
    decode.function_call, decode.password, decode.row_description, decode.data_row,
    decode.error_fields, decode.auth_request, decode.parameter_status, decode.backend_key, decode.command_tag,
    decode.ready_status,
]


@FUZZ
@given(st.sampled_from(DECODERS), hostile)
def test_frame_decoders_raise_only_protocol_violation(decoder: Callable[[bytes], object], data: bytes) -> None:
    """Every typed-frame decoder on mutated frames of every kind (startup_packet has its own tests below)."""
    _only_violations(decoder, data)


@st.composite
def startup_packets(draw: st.DrawFn) -> bytes:
    choice = draw(st.sampled_from(["startup", "ssl", "gss", "cancel"]))
    if choice == "startup":
        params = draw(st.dictionaries(names.filter(bool), texts, max_size=4))
        return encode.startup_message(params, draw(st.sampled_from([m.PROTOCOL_3_0, m.PROTOCOL_3_0 + 2, 2 << 16])))
    if choice == "ssl":
        return encode.ssl_request()
    if choice == "gss":
        return struct.pack("!ii", 8, m.GSSENC_REQUEST_CODE)
    return encode.cancel_request(draw(int32s), draw(int32s))


@st.composite
def mutated_startup(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(startup_packets()))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        n = len(data)
        op = draw(st.sampled_from(["flip", "truncate", "length", "insert"]))
        if op == "flip" and n:
            i = draw(st.integers(min_value=0, max_value=n - 1))
            data[i] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "truncate":
            del data[draw(st.integers(min_value=0, max_value=n)) :]
        elif op == "length" and n >= 4:
            data[0:4] = struct.pack("!I", draw(st.sampled_from([0, 4, 7, 8, 16, 10_000, 10_001]) | uint32s))
        elif op == "insert":
            i = draw(st.integers(min_value=0, max_value=n))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(st.one_of(mutated_startup(), st.binary(max_size=24)))
def test_startup_packet_decoder_alone(packet: bytes) -> None:
    """startup_packet is a public decoder: any bytes, even fewer than its 8-byte header, give only violations."""
    _only_violations(decode.startup_packet, packet)


@FUZZ
@given(st.one_of(mutated_startup(), st.binary(max_size=24)), st.integers(min_value=1, max_value=16))
def test_startup_reader_then_decoder(stream: bytes, step: int) -> None:
    """The path the front-end takes: StartupReader hands startup_packet whole packets only."""
    reader = StartupReader()
    try:
        for i in range(0, len(stream), step):
            packet = reader.feed(stream[i : i + step])
            if packet is not None:
                (length,) = struct.unpack_from("!I", packet)
                assert len(packet) == length and 8 <= length <= 10_000
                decode.startup_packet(packet)
                return
    except ProtocolViolation:
        pass


@FUZZ
@given(command_complete_frames())
def test_row_count_from_any_command_tag(case: tuple[bytes, Any]) -> None:
    """What the front-end does with every CommandComplete: command_tag and tag_rows."""
    frame, tag = case
    assert decode.command_tag(frame) == tag

    def count(f: bytes) -> object:
        return decode.command_tag(f), decode.tag_rows(f)

    _only_violations(count, frame)
    rows = decode.tag_rows(frame)
    last = tag.rsplit(" ", 1)[-1]
    if " " in tag and last.isascii() and last.isdigit():
        assert rows == int(last)
    else:
        assert rows == -1


# --- valid frames decode to what was encoded ---------------------------------------------------------------------

ROUND_TRIPS: list[tuple[st.SearchStrategy[tuple[bytes, Any]], Callable[[bytes], object]]] = [
    (query_frames(), decode.query),
    (parse_frames(), decode.parse),
    (bind_frames(), decode.bind),
    (execute_frames(), decode.execute),
    (close_frames(), decode.close),
    (function_call_frames(), decode.function_call),
    (password_frames(), decode.password),
    (auth_frames(), decode.auth_request),
    (parameter_status_frames(), decode.parameter_status),
    (backend_key_frames(), decode.backend_key),
    (ready_frames(), decode.ready_status),
    (data_row_frames(), decode.data_row),
    (row_description_frames(), decode.row_description),
]


@FUZZ
@given(st.data())
def test_valid_frames_round_trip(data: st.DataObject) -> None:
    strategy, decoder = data.draw(st.sampled_from(ROUND_TRIPS))
    frame, expected = data.draw(strategy)
    assert decoder(frame) == expected


@FUZZ
@given(bind_frames())
def test_bind_target_reads_what_bind_decodes(case: tuple[bytes, Any]) -> None:
    """The relay's shortcut agrees with the full decoder on every valid Bind."""
    frame, expected = case
    assert decode.bind_target(frame) == (expected.portal, expected.statement, len(expected.params))


@FUZZ
@given(parse_frames())
def test_parse_target_reads_what_parse_decodes(case: tuple[bytes, Any]) -> None:
    frame, expected = case
    assert decode.parse_target(frame) == (expected.name, expected.query)
    assert decode.parse_target(frame) == (expected.name, expected.query)  # the second time from the cache


@FUZZ
@given(error_frames())
def test_error_fields_round_trip(case: tuple[bytes, Any]) -> None:
    frame, fields = case
    assert decode.error_fields(frame).fields == fields


# --- the frame reader ------------------------------------------------------------------------------------------


@FUZZ
@given(st.lists(st.one_of(any_valid.map(lambda c: c[0]), mutated()), min_size=1, max_size=12),
       st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=10),
       st.sampled_from([5, 64, 1024, 1 << 20]))
def test_frame_reader_on_hostile_streams(pieces: list[bytes], cuts: list[int], limit: int) -> None:
    """Any stream, any chunking: whole frames that tile the input, a bounded buffer, or a ProtocolViolation."""
    stream = b"".join(pieces)
    reader = FrameReader(limit)
    out: list[tuple[int, bytes]] = []
    pos = 0
    i = 0
    try:
        while pos < len(stream):
            chunk = stream[pos : pos + cuts[i % len(cuts)]]
            got = reader.feed(chunk)
            pos += len(chunk)
            i += 1
            for kind, frame in got:
                (length,) = struct.unpack_from("!I", frame, 1)
                assert kind == frame[0] and len(frame) == 1 + length and 4 <= length <= limit
            out.extend(got)
            # Only one incomplete frame is ever held, and never one above the limit.
            assert reader.buffered <= max(4, limit)
    except ProtocolViolation:
        return
    consumed = b"".join(f for _, f in out)
    assert stream[: len(consumed)] == consumed
    assert len(consumed) + reader.buffered == len(stream)


@FUZZ
@given(st.lists(any_valid.map(lambda c: c[0]), min_size=1, max_size=10),
       st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=10))
def test_frame_reader_relays_valid_streams_unchanged(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frames)
    reader = FrameReader(1 << 20)
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out.extend(f for _, f in reader.feed(stream[pos : pos + step]))
        pos += step
        i += 1
    assert out == frames and reader.buffered == 0


@FUZZ
@given(st.sampled_from(FRONTEND), st.data())
def test_relay_path_decodes_what_the_reader_frames(strategy: st.SearchStrategy[tuple[bytes, Any]],
                                                   data: st.DataObject) -> None:
    """What ClientConnection.relay does: FrameReader, then the decoder for each handled type."""
    handled: dict[int, Callable[[bytes], object]] = {
        m.QUERY: decode.query, m.PARSE: decode.parse_target, m.BIND: decode.bind_target, m.EXECUTE: decode.execute,
        m.CLOSE: decode.close, m.FUNCTION_CALL: decode.function_call, m.PASSWORD: decode.password,
    }
    stream = data.draw(mutated(strategy))
    try:
        frames = FrameReader(1 << 20).feed(stream)
    except ProtocolViolation:
        return
    for kind, frame in frames:
        if kind in handled:
            _only_violations(handled[kind], frame)


@FUZZ
@given(st.lists(param_values, min_size=1, max_size=5), st.binary(max_size=8))
def test_data_row_spans_walk_a_run_in_place(rows: list[list[bytes | None]], prefix: bytes) -> None:
    """What a masker does on a run of DataRows: each row's value spans, as offsets into the run itself."""
    run = prefix + b"".join(encode.data_row(r) for r in rows)
    pos = len(prefix)
    for values in rows:
        spans, pos = decode.data_row_spans(run, pos)
        assert [None if sp is None else run[sp[0] : sp[1]] for sp in spans] == values
    assert pos == len(run)


@FUZZ
@given(row_description_frames())
def test_row_description_encodes_back(case: tuple[bytes, Any]) -> None:
    frame, fields = case
    assert encode.row_description(fields) == frame
