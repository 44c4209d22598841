"""The C DataRow walk (wardgate.protocols.postgres._datarow.walk) answers exactly what the Python one answers.

The specification is :func:`wardgate.protocols.postgres.decode.data_row_walk`: for a well-formed run the two
return equal lists; for anything else the C one raises ValueError exactly when the Python one raises
ProtocolViolation (and :func:`decode.walk_rows` turns the first into the second). Property tests draw well-formed
runs from ``encode.data_row`` with random values and column choices, then break them: every truncation, corrupted
type bytes, lengths and counts, random bytes, and random bytes spliced into a valid run.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.protocols.postgres import _datarow, decode
from wardgate.protocols.postgres.encode import data_row
from wardgate.protocols.postgres.framing import ProtocolViolation

MANY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Walk = tuple[list[int], list[int]]

values = st.one_of(st.none(), st.just(b""), st.binary(max_size=12), st.binary(min_size=40, max_size=300))
rows_st = st.lists(values, min_size=0, max_size=20)


@st.composite
def runs(draw: st.DrawFn, min_rows: int = 0) -> tuple[bytes, tuple[int, ...]]:
    """A run of rows of one width (as a result has) and a column choice valid for it, duplicates included."""
    width = draw(st.integers(0, 20))
    nrows = draw(st.integers(min_rows, 8))
    rows = [draw(st.lists(values, min_size=width, max_size=width)) for _ in range(nrows)]
    cols = tuple(draw(st.lists(st.integers(0, width - 1), max_size=8))) if width else ()
    return b"".join(data_row(r) for r in rows), cols


def reference(buf: bytes, cols: tuple[int, ...]) -> Walk | None:
    """The Python answer, or None when it rejects the run."""
    try:
        return decode.data_row_walk(buf, cols)
    except ProtocolViolation:
        return None


def native(buf: bytes | bytearray | memoryview, cols: tuple[int, ...]) -> Walk | None:
    try:
        return _datarow.walk(buf, cols)
    except ValueError as exc:
        assert str(exc), "the reason must not be empty"
        return None


def check(buf: bytes, cols: tuple[int, ...]) -> Walk | None:
    want = reference(buf, cols)
    assert native(buf, cols) == want, (buf, cols)
    return want


# --- well-formed runs -----------------------------------------------------------------------------------------


@MANY
@given(runs())
@example((b"", ()))
@example((b"", (0, 3)))  # no row, so no row lacks a column
@example((data_row([]), ()))
@example((data_row([None, b"", b"x"]), (2, 0, 1, 2, 2)))
def test_walk_equals_reference(case: tuple[bytes, tuple[int, ...]]) -> None:
    buf, cols = case
    got = check(buf, cols)
    assert got is not None  # the run is well formed
    rows, offsets = got
    assert len(offsets) == len(rows) * len(cols)


@MANY
@given(st.lists(rows_st, max_size=6), st.lists(st.integers(0, 22), max_size=6))
def test_rows_of_mixed_widths(rows: list[list[bytes | None]], cols: list[int]) -> None:
    """Rows of different widths (no result has them, but a hostile server may send them): a column beyond a row's
    width is an error on both sides."""
    check(b"".join(data_row(r) for r in rows), tuple(cols))


@given(runs(min_rows=1))
@settings(max_examples=300, deadline=None)
def test_other_buffers(case: tuple[bytes, tuple[int, ...]]) -> None:
    buf, cols = case
    want = decode.data_row_walk(buf, cols)
    assert _datarow.walk(bytearray(buf), cols) == want
    assert _datarow.walk(memoryview(buf), list(cols)) == want
    # A view into a larger buffer: offsets are within the view, nothing around it is read.
    big = b"D\0\0\0\x06\0\0" + buf + b"Dxx"
    assert _datarow.walk(memoryview(big)[7 : 7 + len(buf)], cols) == want


# --- malformed runs -------------------------------------------------------------------------------------------


SMALL_ROWS = [data_row(r) for r in ([b"1", None, b"ab"], [b"", b"xyz", None], [None, None, b"q"])]
SMALL = b"".join(SMALL_ROWS)
BOUNDARIES = [sum(len(r) for r in SMALL_ROWS[:k]) for k in range(len(SMALL_ROWS) + 1)]


@pytest.mark.parametrize("cols", [(), (0,), (2, 1, 0, 2)])
def test_every_truncation(cols: tuple[int, ...]) -> None:
    for cut in range(len(SMALL) + 1):
        ok = check(SMALL[:cut], cols) is not None
        assert ok == (cut in BOUNDARIES), cut


def test_every_corrupted_byte() -> None:
    """Each byte of a small run set to a few telling values: type bytes, lengths and counts become wrong."""
    for i in range(len(SMALL)):
        for b in (0x00, 0x01, 0x02, 0x06, 0x7F, 0x80, 0xFE, 0xFF, ord("D")):
            buf = SMALL[:i] + bytes([b]) + SMALL[i + 1 :]
            for cols in ((), (0, 2), (1,)):
                check(buf, cols)


@pytest.mark.parametrize(
    ("buf", "cols"),
    [
        (b"T" + SMALL[1:], ()),  # not a DataRow
        (b"D\0\0\0\x05\0\0", ()),  # length below 6
        (b"D\0\0\0\x06\xff\xff", ()),  # negative count
        (b"D\0\0\0\x0a\0\x01\xff\xff\xff\xfe", ()),  # a value length below -1
        (b"D\0\0\0\x0a\0\x01\x00\x00\x00\x01", ()),  # a value past the row
        (b"D\0\0\0\x07\0\0\0", ()),  # trailing bytes inside the row
        (b"D\0\0\0\x06\0\x01", ()),  # a value length past the row end
        (b"D\0\0\0\x06\0\x01" + data_row([None]), ()),  # ... read from the next row by the reference
        (b"D\0\0\0\x06\0\x00D\0\0", ()),  # a truncated second row
        (b"D\0\0\0", ()),  # a truncated length
        (b"D", ()),
        (SMALL, (3,)),  # no such column
        (data_row([b"a"]) + data_row([]), (0,)),  # the second row lacks it
        (b"D\x80\0\0\x06\0\0", ()),  # a negative length
        (b"D\x7f\xff\xff\xff\0\0", ()),  # a length past the end
    ],
)
def test_rejected(buf: bytes, cols: tuple[int, ...]) -> None:
    assert reference(buf, cols) is None
    with pytest.raises(ValueError, match=r"\w"):
        _datarow.walk(buf, cols)
    with pytest.raises(ProtocolViolation, match="malformed DataRow message"):
        decode.walk_rows(buf, cols)


@MANY
@given(st.binary(max_size=60), st.lists(st.integers(0, 3), max_size=3))
@example(b"D\0\0\0\x06\0\0", [])
@example(b"D\0\0\0\x0a\0\x01\xff\xff\xff\xff", [0])
def test_random_bytes(buf: bytes, cols: list[int]) -> None:
    check(buf, tuple(cols))


@MANY
@given(runs(min_rows=1), st.data())
def test_spliced(case: tuple[bytes, tuple[int, ...]], data: st.DataObject) -> None:
    """A valid run with a few bytes overwritten, inserted or removed somewhere."""
    buf, cols = case
    at = data.draw(st.integers(0, len(buf)))
    how = data.draw(st.sampled_from(["overwrite", "insert", "delete", "length"]))
    if how == "overwrite":
        junk = data.draw(st.binary(min_size=1, max_size=4))
        buf = buf[:at] + junk + buf[at + len(junk) :]
    elif how == "insert":
        buf = buf[:at] + data.draw(st.binary(min_size=1, max_size=4)) + buf[at:]
    elif how == "delete":
        buf = buf[:at] + buf[at + data.draw(st.integers(1, 4)) :]
    else:  # a plausible int32 (a length) written over the bytes at `at`
        n = data.draw(st.sampled_from([-2, -1, 0, 1, 5, 6, 7, 0x7FFFFFFF, -0x80000000]))
        buf = buf[:at] + struct.pack("!i", n) + buf[at + 4 :]
    check(buf, cols)


def test_negative_and_huge_columns() -> None:
    """Deviations from the reference by design: a negative index is an error, not a count from the end (the
    reference would index from the end); an index no int16 count reaches is an error like any missing column."""
    row = data_row([b"a", b"b"])
    for cols in ((-1,), (0, -2), (1 << 40,), (1 << 80,), (-(1 << 80),)):
        with pytest.raises(ValueError):
            _datarow.walk(row, cols)
    assert _datarow.walk(b"", (-1,)) == ([], [])  # no row, nothing to check it against


def test_argument_errors() -> None:
    with pytest.raises(TypeError):
        _datarow.walk("D", ())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _datarow.walk(SMALL, ("0",))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _datarow.walk(SMALL, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _datarow.walk(SMALL)  # type: ignore[call-arg]


def test_many_columns() -> None:
    """A wide row (beyond the C code's small on-stack arrays) and many chosen columns."""
    row = [None if i % 7 == 0 else str(i).encode() for i in range(300)]
    buf = data_row(row) * 3
    cols = tuple(range(299, -1, -3)) + tuple(range(40))
    assert check(buf, cols) is not None


def test_shares_row_boundaries() -> None:
    """Each row's start is the previous row's end: equal values (the C code reuses one int object for both)."""
    rows, _ = _datarow.walk(SMALL, ())
    a, b, c, d = BOUNDARIES
    assert rows == [a, b, b, c, c, d]
    assert rows[1] is rows[2]
