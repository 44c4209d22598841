"""The sans-IO PostgreSQL codec: framing under any chunking, round trips, and hostile bytes."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wardgate.protocols.postgres import decode, encode
from wardgate.protocols.postgres import messages as m
from wardgate.protocols.postgres.framing import FrameReader, ProtocolViolation, StartupReader


def _frame(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


bodies = st.lists(st.tuples(st.sampled_from([b"Q", b"D", b"C", b"Z"]), st.binary(max_size=300)), max_size=20)


@given(bodies, st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30))
def test_frames_survive_any_chunking(messages: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(_frame(k, b) for k, b in messages)
    reader = FrameReader(1 << 20)
    got: list[tuple[int, bytes]] = []
    pos = 0
    i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got.extend(reader.feed(stream[pos : pos + step]))
        pos += step
        i += 1
    assert got == [(k[0], _frame(k, b)) for k, b in messages]
    assert reader.buffered == 0


def test_oversized_and_undersized_lengths_are_violations() -> None:
    with pytest.raises(ProtocolViolation, match="exceeds the limit"):
        FrameReader(1024).feed(b"Q" + struct.pack("!i", 5000))
    with pytest.raises(ProtocolViolation, match="invalid message length"):
        FrameReader(1024).feed(b"Q" + struct.pack("!i", 3))


def test_startup_reader_limits() -> None:
    with pytest.raises(ProtocolViolation):
        StartupReader().feed(struct.pack("!i", 4) + b"xxxx")
    with pytest.raises(ProtocolViolation):
        StartupReader().feed(struct.pack("!i", 10_001))
    r = StartupReader()
    packet = encode.startup_message({"user": "u", "database": "d"})
    assert r.feed(packet[:3]) is None
    assert r.feed(packet[3:] + b"extra") == packet
    assert r.take_rest() == b"extra"


def test_startup_round_trip_and_special_requests() -> None:
    msg = decode.startup_packet(encode.startup_message({"user": "ann", "database": "shop", "options": "-c x=1"}))
    assert msg == m.StartupMessage(3, 0, {"user": "ann", "database": "shop", "options": "-c x=1"})
    assert decode.startup_packet(encode.ssl_request()) == m.SSLRequest()
    assert decode.startup_packet(encode.cancel_request(42, -7)) == m.CancelRequest(42, -7)
    with pytest.raises(ProtocolViolation, match="unsupported frontend protocol"):
        decode.startup_packet(struct.pack("!ii", 8, 2 << 16))


def test_extended_messages_decode() -> None:
    parse = _frame(b"P", b"s1\0select $1\0" + struct.pack("!hi", 1, 23))
    assert decode.parse(parse) == m.Parse("s1", "select $1", (23,))
    bind_body = b"p1\0s1\0" + struct.pack("!hh", 1, 0) + struct.pack("!h", 2)
    bind_body += struct.pack("!i", 2) + b"42" + struct.pack("!i", -1) + struct.pack("!hh", 1, 1)
    assert decode.bind(_frame(b"B", bind_body)) == m.Bind("p1", "s1", (0,), (b"42", None), (1,))
    assert decode.execute(_frame(b"E", b"p1\0" + struct.pack("!i", 10))) == m.Execute("p1", 10)
    assert decode.close(_frame(b"C", b"Ss1\0")) == m.Close("S", "s1")
    assert decode.parse(encode.parse("n", "select 1")) == m.Parse("n", "select 1", ())


def test_error_response_round_trip() -> None:
    frame = encode.error_response("42501", "denied by rule x", detail="d", hint="h")
    fields = decode.error_fields(frame)
    assert (fields.severity, fields.code, fields.message) == ("ERROR", "42501", "denied by rule x")
    assert fields.fields["D"] == "d" and fields.fields["H"] == "h"


def test_tag_rows() -> None:
    assert decode.tag_rows(b"C\x00\x00\x00\x0dSELECT 3\x00") == 3
    assert decode.tag_rows(b"C\x00\x00\x00\x0fINSERT 0 5\x00") == 5
    assert decode.tag_rows(b"C\x00\x00\x00\x0aBEGIN\x00") == -1


DECODERS = [decode.query, decode.parse, decode.bind, decode.execute, decode.close, decode.function_call,
            decode.error_fields, decode.auth_request, decode.parameter_status]


@given(st.sampled_from(DECODERS), st.binary(max_size=200))
def test_decoders_reject_garbage_cleanly(decoder: object, body: bytes) -> None:
    """Hostile bytes produce a ProtocolViolation or a value, never another exception."""
    frame = b"X" + struct.pack("!i", len(body) + 4) + body
    with contextlib.suppress(ProtocolViolation):
        decoder(frame)  # type: ignore[operator]


@given(st.binary(min_size=8, max_size=200))
def test_startup_decoder_rejects_garbage_cleanly(body: bytes) -> None:
    packet = struct.pack("!i", len(body) + 4) + body
    with contextlib.suppress(ProtocolViolation):
        decode.startup_packet(packet)


@given(bodies, st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30))
def test_runs_of_rows_cover_the_stream_under_any_chunking(messages: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(_frame(k, b) for k, b in messages)
    reader = FrameReader(1 << 20)
    got: list[tuple[int, bytes, int]] = []
    pos = 0
    i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got.extend(reader.feed_runs(stream[pos : pos + step], ord("D")))
        pos += step
        i += 1
    assert b"".join(chunk for _, chunk, _ in got) == stream
    assert sum(n for _, _, n in got) == len(messages)
    assert [k for k, _, _ in got if k != ord("D")] == [k[0] for k, _ in messages if k != b"D"]
    assert all(n == 1 for k, _, n in got if k != ord("D"))
