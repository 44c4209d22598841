"""The C bulk masking loops (wardgate.masking._bulk) answer exactly what their Python specifications answer.

``partial_many`` is held to :func:`wardgate.masking.bulk.partial_many_py` (``mask_whole`` in the partial style,
value by value) over many values of one buffer, at random offsets with gaps between them and NULLs among them.
Values are drawn to reach every branch of ``mask_whole``: e-mail addresses of many shapes (top-level domains that
do and do not qualify, text after the address, no local part), card, phone and SSN shapes with separators, lengths
around the five-character rule of ``keep_ends``, UTF-8 of every width and invalid UTF-8 (stray continuation bytes,
truncated characters), and plain random bytes.

``candidates`` is held to ``_prefilter.may_match`` asked value by value (itself held to the Python prefilter by
test_prefilter_native.py), and to :func:`wardgate.masking.bulk.candidates_py` with a real ``Prefilter``.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.masking import _bulk, _prefilter
from wardgate.masking.bulk import candidates_py, partial_many_py
from wardgate.masking.detectors import BUILTIN_DETECTORS, Prefilter
from wardgate.masking.maskers import Style, mask_whole
from wardgate.protocols.postgres.encode import data_row

MANY = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL = (1 << len(_prefilter.ORDER)) - 1

# --- values ---------------------------------------------------------------------------------------------------

EMAILS = [
    b"a@b", b"a@b.", b"@b.com", b"@", b"a@", b"@@", b"a@@b.com", b"x@y.co.uk", b"jane@example.com",
    b"jane.doe@mail.example.com", b"jane@example.com (tel +1 555 123 4567)", b"a@b.xn--p1ai", b"a@b.xn--p",
    b"a@b.xn--", b"a@b.XN--p1ai", b"a@b.xn-p1ai", b"a@b.c", b"a@b.c0m", b"a@b.com.", b"a@b.com ", b"a@.com",
    b"a.b@c", b"a@b.c.d", "é@x.org".encode(), "ü@exämple.de".encode(), "😀@x.io".encode(), b"\xc3@x.io",
    b"\x80@x.io", b"ab@" + b"c" * 70 + b".com", b"a@b." + b"c" * 63, b"a@b." + b"c" * 64,
    b"a@b.xn--" + b"a" * 55, b"a@b.xn--" + b"a" * 56, b"1@2.34", b"+1@x.io", b"(a)@b.cd",
]
SHAPED = [
    b"4111 1111 1111 1111", b"4111-1111-1111-1111", b"4111111111111111", b"5555555555554444", b"4111.1111.1111.1111",
    b"(4111) 1111 1111 1111", b"411111111111", b"41111111111111111111", b"+1 (555) 123-4567", b"+15551234567",
    b"(555) 123-4567", b"555-123-4567", b"555.123.4567", b"5551234567", b"555 123 4567 89", b"123-45-6789",
    b"123 45 6789", b"123.45.6789", b"123456789", b"12345678901", b"1234-5678901", b"123-456-789", b"+", b"(",
    b"()", b"+-", b"-", b" ", b"0", b"00", b"+0", b"(0)", b"1 2", b"12-34", b"123-45", b"+1 2", b"1", b"12345",
]
TEXT = [
    b"", b"a", b"ab", b"abc", b"abcd", b"abcde", b"abcdef", b"Ada Lovelace", b"----", b"- - - - -", b"a-b-c-d-e",
    "é".encode(), "éé".encode(), "ééééé".encode(), "日本語テキスト".encode(), "😀😀😀😀😀".encode(), "a😀".encode(),
    "😀a😀".encode(), b"\x80\x80\x80\x80\x80", b"\xc3\xc3\xc3\xc3\xc3", b"\xe2\x82", b"abcd\xe2\x82", b"\xf0\x9f\x98",
    b"abcde\xf0\x9f\x98", b"\xf0\x9f\x98\x80\x80", b"\xff\xfe\xfd\xfc\xfb", b"ab\x00cd", b"\xf8\x80\x80\x80xyz",
]
FRAGMENTS = [*EMAILS, *SHAPED, *TEXT, b"@", b".", b"-", b" ", b"+", b"(", b")", b"1", b"99", b"\xc3\xa9",
             b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\x80", b"\xc3", b"xn--", b".com", b"a", b"Z"]

ascii_text = st.binary(max_size=30).map(lambda b: bytes(c & 0x7F for c in b))
utf8_text = st.text(max_size=12).map(str.encode)
shape_chars = st.lists(st.sampled_from(b"0123456789 -.()+@a"), max_size=24).map(bytes)
glued = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4).map(b"".join)
value = st.one_of(
    st.sampled_from(EMAILS + SHAPED + TEXT),
    ascii_text,
    utf8_text,
    shape_chars,
    glued,
    st.binary(max_size=12),
    st.binary(min_size=60, max_size=200),
)


def expected(v: bytes) -> bytes:
    out = mask_whole(v, Style.PARTIAL, b"")
    assert out is not None and len(out) == len(v)
    return out


def one(v: bytes) -> bytes:
    buf = bytearray(v)
    assert _bulk.partial_many(buf, [0], [len(v)]) == 1
    return bytes(buf)


@pytest.mark.parametrize("v", EMAILS + SHAPED + TEXT)
def test_each_shape(v: bytes) -> None:
    assert one(v) == expected(v), v


@MANY
@given(value)
@example(b"a" * 5 + "é".encode())
def test_one_value(v: bytes) -> None:
    assert one(v) == expected(v)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[bytearray, list[int], list[int]]:
    """Values laid out in one buffer with random gaps (which must stay as they are) and NULLs."""
    vals = draw(st.lists(st.one_of(st.none(), value), max_size=30))
    buf = bytearray()
    starts: list[int] = []
    ends: list[int] = []
    for v in vals:
        buf += draw(st.binary(max_size=6))
        if v is None:
            starts.append(-1)
            ends.append(draw(st.sampled_from([-1, 0, 10**6])))  # a NULL's end is never read
            continue
        starts.append(len(buf))
        buf += v
        ends.append(len(buf))
    buf += draw(st.binary(max_size=6))
    return buf, starts, ends


@MANY
@given(layouts())
def test_many_values_in_one_buffer(layout: tuple[bytearray, list[int], list[int]]) -> None:
    buf, starts, ends = layout
    want = bytearray(buf)
    n = partial_many_py(want, starts, ends)
    assert _bulk.partial_many(buf, starts, ends) == n
    assert buf == want


def test_data_rows_in_place() -> None:
    """As the gateway calls it: offsets of one column of a run of DataRows, masked where they lie."""
    rows: list[list[bytes | None]] = [
        [b"1", b"jane@example.com", None], [b"2", None, b"x"], [b"3", b"4111 1111 1111 1111", b"y"],
    ]
    buf = bytearray(b"".join(data_row(r) for r in rows))
    want = bytearray(buf)
    starts, ends = [], []
    pos = 0
    for r in rows:
        at = pos + 7 + 4 + len(r[0] or b"") + 4
        starts.append(-1 if r[1] is None else at)
        ends.append(-1 if r[1] is None else at + len(r[1]))
        pos += len(data_row(r))
    assert partial_many_py(want, starts, ends) == _bulk.partial_many(buf, starts, ends) == 2
    assert buf == want
    assert b"j***@*******.com" in buf and b"**** **** **** 1111" in buf


def test_other_buffers() -> None:
    v = b"jane@example.com"
    mv = memoryview(bytearray(b"xx" + v + b"yy"))
    assert _bulk.partial_many(mv[2:-2], [0], [len(v)]) == 1
    assert bytes(mv) == b"xx" + expected(v) + b"yy"
    with pytest.raises((TypeError, BufferError)):
        _bulk.partial_many(v, [0], [1])  # type: ignore[arg-type]  # bytes are read-only
    assert _bulk.partial_many(bytearray(v), (0,), (4,)) == 1  # tuples as well as lists


@pytest.mark.parametrize(
    ("starts", "ends"),
    [([0], [12]), ([5], [4]), ([11], [11 + 1]), ([0, 1], [1]), ([0], []), ([1 << 70], [1 << 71]), ([0], [-1]),
     ([0, 0], [1, 12])],
)
def test_out_of_bounds(starts: list[int], ends: list[int]) -> None:
    """Refused before anything is written."""
    buf = bytearray(b"hello world")
    with pytest.raises(ValueError):
        _bulk.partial_many(buf, starts, ends)
    assert buf == b"hello world"


def test_argument_errors() -> None:
    buf = bytearray(b"hello")
    with pytest.raises(TypeError):
        _bulk.partial_many(buf, [0.0], [1])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _bulk.partial_many(buf, 0, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _bulk.partial_many(buf, [0])  # type: ignore[call-arg]
    assert _bulk.partial_many(buf, [-(1 << 70)], [0]) == 0  # a NULL, however negative
    assert _bulk.partial_many(buf, [], []) == 0


# --- candidates -----------------------------------------------------------------------------------------------

DETECTING = [
    b"jane@example.com", b"4111 1111 1111 1111", b"4111111111111111", b"DE89 3704 0044 0532 0130 00",
    b"DE89370400440532013000", b"123-45-6789", b"+1 555 123 4567", b"(555)", b"555-123-4567", b"10.0.0.1",
    b"2001:db8::1", b"fe80:1:2:3:", b"eyJhbGciOi", b"AKIAIOSFODNN7EXAMPLE", b"ghp_abc", b"github_pat_x",
    b"sk_live_x", b"xoxb-1", b"-----BEGIN PRIVATE KEY-----", b"Ada Lovelace", b"", b"x", b"@", b":", b"9",
    b"D\x00\x00\x00\x1f\x00\x03", b"\x00\x00\x00\x10", b"\xff\xff\xff\xff", "é@x.org".encode(), b"AB12",
]
candidate_value = st.one_of(st.lists(st.sampled_from(DETECTING), min_size=1, max_size=3).map(b"".join),
                            st.binary(max_size=20), value)


@functools.cache
def prefilter(bits: int) -> Prefilter:
    return Prefilter([BUILTIN_DETECTORS[n] for i, n in enumerate(_prefilter.ORDER) if bits >> i & 1])


@st.composite
def candidate_layouts(draw: st.DrawFn) -> tuple[bytes, list[int], list[int]]:
    """Values glued to each other or to DataRow-like headers: the C code must read nothing outside a value."""
    buf = bytearray()
    starts: list[int] = []
    ends: list[int] = []
    for v in draw(st.lists(st.one_of(st.none(), candidate_value), max_size=20)):
        buf += draw(st.sampled_from([b"", b"\x00\x00\x00\x10", b"1", b"@", b"ey", b"4111 ", b"AK", b":"]))
        if v is None:
            starts.append(-1)
            ends.append(-1)
            continue
        starts.append(len(buf))
        buf += v
        ends.append(len(buf))
    buf += draw(st.sampled_from([b"", b"J", b"1", b"IA", b":1:2:"]))
    return bytes(buf), starts, ends


def per_value(buf: bytes, starts: list[int], ends: list[int], bits: int, skip: int) -> list[int]:
    return [i for i, (s, e) in enumerate(zip(starts, ends, strict=True))
            if s >= 0 and _prefilter.may_match(buf[s + skip : e] if s + skip <= e else b"", bits)]


@MANY
@given(candidate_layouts(), st.integers(0, ALL), st.sampled_from([0, 1]))
@example((b"@x", [0], [2]), 1 << _prefilter.ORDER.index("email"), 0)
@example((b"a@x", [0], [3]), 1 << _prefilter.ORDER.index("email"), 1)
@example((b"a", [0, 1], [1, 1]), ALL, 1)
def test_candidates_equal_may_match(layout: tuple[bytes, list[int], list[int]], bits: int, skip: int) -> None:
    buf, starts, ends = layout
    got = _bulk.candidates(buf, starts, ends, bits, skip)
    assert got == per_value(buf, starts, ends, bits, skip)
    assert got == candidates_py(buf, starts, ends, prefilter(bits), skip)


@pytest.mark.parametrize("skip", [0, 1])
def test_candidates_every_detector(skip: int) -> None:
    buf = b"".join(DETECTING)
    starts, ends, pos = [], [], 0
    for v in DETECTING:
        starts.append(pos)
        pos += len(v)
        ends.append(pos)
    for i in range(len(_prefilter.ORDER)):
        for bits in (1 << i, ALL & ~(1 << i)):
            assert _bulk.candidates(buf, starts, ends, bits, skip) == per_value(buf, starts, ends, bits, skip)
    assert _bulk.candidates(buf, starts, ends, 0, skip) == []


def test_candidates_errors() -> None:
    buf = b"jane@example.com"
    with pytest.raises(ValueError):
        _bulk.candidates(buf, [0], [17], ALL, 0)
    with pytest.raises(ValueError):
        _bulk.candidates(buf, [3], [2], ALL, 0)
    with pytest.raises(ValueError):
        _bulk.candidates(buf, [0], [], ALL, 0)
    with pytest.raises(ValueError):
        _bulk.candidates(buf, [0], [1], ALL + 1, 0)
    with pytest.raises(ValueError):
        _bulk.candidates(buf, [0], [1], -1, 0)
    with pytest.raises(ValueError):
        _bulk.candidates(buf, [0], [1], ALL, -1)
    with pytest.raises(TypeError):
        _bulk.candidates(buf, [0], [1], "all", 0)  # type: ignore[arg-type]
    assert _bulk.candidates(bytearray(buf), [0, -1], [16, -1], ALL, 0) == [0]
    assert _bulk.candidates(memoryview(buf), (0,), (16,), ALL, 1) == [0]
