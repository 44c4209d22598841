"""The C framing loop (wardgate.protocols.postgres._framing.frames) answers exactly what the Python loop
(framing._frames_py, its specification) answers: the same entries, the same offset, the same refusal.

Property tests draw streams of messages of random types and sizes (runs of one type included), cut anywhere,
with lengths corrupted or spliced in, for random run types and limits, as bytes and as bytearray.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.protocols.postgres import _framing
from wardgate.protocols.postgres.framing import FrameReader, ProtocolViolation, _frames_py

MANY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

kinds = st.sampled_from(b"DDDDTCZNEAs")
message = st.builds(lambda k, body: bytes([k]) + struct.pack("!I", len(body) + 4) + body, kinds,
                    st.binary(max_size=40))
stream = st.lists(message, max_size=30).map(b"".join)


def both(buf: bytes | bytearray, run_type: int, limit: int) -> tuple[object, object]:
    def call(f):  # type: ignore[no-untyped-def]
        try:
            return f(buf, run_type, limit)
        except ValueError as exc:
            return ("refused", exc.args)
    return call(_framing.frames), call(_frames_py)


@MANY
@given(stream, st.sampled_from([-1, ord("D"), ord("T"), ord("Z")]), st.integers(4, 64), st.data())
@example(b"", ord("D"), 64, None)
@example(b"D\x00\x00\x00\x03", ord("D"), 64, None)  # a length below 4
@example(b"D\xff\xff\xff\xff", ord("D"), 1 << 30, None)  # beyond the limit
def test_equals_reference(buf: bytes, run_type: int, limit: int, data: st.DataObject | None) -> None:
    if data is not None and buf:
        how = data.draw(st.sampled_from(["whole", "cut", "corrupt", "splice"]))
        at = data.draw(st.integers(0, len(buf) - 1))
        if how == "cut":
            buf = buf[:at]
        elif how == "corrupt":
            buf = buf[:at] + bytes([data.draw(st.integers(0, 255))]) + buf[at + 1 :]
        elif how == "splice":
            buf = buf[:at] + data.draw(st.binary(min_size=1, max_size=8)) + buf[at:]
    native, reference = both(buf, run_type, limit)
    assert native == reference, (buf, run_type, limit)
    assert both(bytearray(buf), run_type, limit)[0] == reference


def test_reader_refuses_like_before_and_keeps_partial_frames() -> None:
    r = FrameReader(100)
    assert r.feed_runs(b"D\x00\x00\x00\x06\x00\x00D\x00\x00", ord("D")) == [(68, b"D\x00\x00\x00\x06\x00\x00", 1)]
    assert r.buffered == 3
    assert r.feed_runs(b"\x00\x06\x00\x00Z\x00\x00\x00\x05I", ord("D")) == [
        (68, b"D\x00\x00\x00\x06\x00\x00", 1), (90, b"Z\x00\x00\x00\x05I", 1)]
    with pytest.raises(ProtocolViolation, match="exceeds the limit of 100 bytes"):
        r.feed_runs(b"Q\x00\x00\x10\x00", -1)
    assert r.buffered == 0
    with pytest.raises(ProtocolViolation, match="invalid message length 3 for message type 'Q'"):
        FrameReader(100).feed_runs(b"Q\x00\x00\x00\x03", -1)


def test_messages_without_body_and_ready_for_query_are_shared() -> None:
    """ParseComplete, BindComplete, ReadyForQuery...: the same bytes object every time (no allocation per
    message), equal to what the Python loop returns; other messages are new objects."""
    buf = b"1\x00\x00\x00\x042\x00\x00\x00\x04C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I"
    first, pos = _framing.frames(buf, -1, 1 << 30)
    again, _ = _framing.frames(bytearray(buf), -1, 1 << 30)
    assert (first, pos) == _frames_py(buf, -1, 1 << 30)
    assert [a[1] is b[1] for a, b in zip(first, again, strict=True)] == [True, True, False, True]
    for status in b"ITE":
        z = b"Z\x00\x00\x00\x05" + bytes([status])
        assert _framing.frames(z, -1, 64)[0][0][1] is _framing.frames(z, -1, 64)[0][0][1] == z
    odd = b"Z\x00\x00\x00\x05X"  # not a status the server sends: correct, not shared
    assert _framing.frames(odd, -1, 64)[0] == [(90, odd, 1)]
    assert _framing.frames(odd, -1, 64)[0][0][1] is not _framing.frames(odd, -1, 64)[0][0][1]


def _msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


@MANY
@given(st.lists(stream, min_size=1, max_size=6), st.sampled_from([-1, ord("D"), ord("T")]))
def test_a_memo_changes_no_value(bufs: list[bytes], run_type: int) -> None:
    """Fed one reader's reads in turn, the loop with a memo answers what the reference answers for each read."""
    memo: list[object] = [None] * _framing.memo_slots()
    for buf in bufs:
        assert _framing.frames(buf, run_type, 64, memo) == _frames_py(buf, run_type, 64)


def test_a_repeated_message_is_the_same_entry() -> None:
    """The Parse, Describe and Execute of a statement run again, its RowDescription and CommandComplete: the same
    tuple as last time (nothing allocated), while a message that differs, one of a type that does not repeat, a
    merged run and a message over 1 KiB are new; each reader's memo is its own."""
    parse = _msg(b"P", b"\x00SELECT abalance FROM pgbench_accounts WHERE aid = $1\x00\x00\x00")
    bind = _msg(b"B", b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x0212\x00\x00")
    complete = _msg(b"C", b"SELECT 1\x00")
    memo: list[object] = [None] * _framing.memo_slots()
    first, _ = _framing.frames(parse + bind + complete, -1, 1 << 30, memo)
    again, _ = _framing.frames(parse + bind + complete, -1, 1 << 30, memo)
    assert first == again
    assert [a is b for a, b in zip(first, again, strict=True)] == [True, False, True]  # Bind is not kept
    other = _msg(b"C", b"SELECT 2\x00")
    changed, _ = _framing.frames(other + complete, -1, 1 << 30, memo)
    assert changed == [(67, other, 1), (67, complete, 1)]
    assert changed[1] is not first[2]  # the memo holds the newest of a type, then the one after it
    assert _framing.frames(complete, -1, 1 << 30, memo)[0][0] is changed[1]
    assert _framing.frames(parse, -1, 1 << 30, [None] * _framing.memo_slots())[0][0] is not first[0]
    rows = _msg(b"D", b"\x00\x01\x00\x00\x00\x011")
    run1, _ = _framing.frames(rows, ord("D"), 1 << 30, memo)
    run2, _ = _framing.frames(rows, ord("D"), 1 << 30, memo)
    assert run1 == run2 == [(68, rows, 1)] and run1[0] is not run2[0]  # DataRows are a run, never kept
    big = _msg(b"Q", b"x" * 1100 + b"\x00")
    assert _framing.frames(big, -1, 1 << 30, memo)[0][0] is not _framing.frames(big, -1, 1 << 30, memo)[0][0]
    small = _msg(b"Q", b"SELECT 1\x00")
    assert _framing.frames(small, -1, 1 << 30, memo)[0][0] is _framing.frames(small, -1, 1 << 30, memo)[0][0]


def test_a_bad_memo_is_refused() -> None:
    with pytest.raises(TypeError, match="memo must be a list of"):
        _framing.frames(b"", -1, 64, [None])
    with pytest.raises(TypeError, match="memo must be a list of"):
        _framing.frames(b"", -1, 64, (None,) * _framing.memo_slots())
    assert _framing.frames(b"", -1, 64, None) == ([], 0)


def test_the_reader_hands_a_repeated_statement_back_as_the_same_objects() -> None:
    r = FrameReader(1 << 20)
    exchange = _msg(b"P", b"\x00SELECT 1\x00\x00\x00") + _msg(b"D", b"P\x00") + _msg(b"E", b"\x00\x00\x00\x00\x00")
    first, again = r.feed_runs(exchange, -1), r.feed_runs(exchange, -1)
    assert first == again and all(a is b for a, b in zip(first, again, strict=True))
    assert FrameReader(1 << 20).feed_runs(exchange, -1)[0] is not first[0]
