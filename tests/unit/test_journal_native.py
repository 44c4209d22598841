"""The journal's C encoder (wardgate/audit/_records.c): every record comes back exactly as it went in, by type;
records it cannot express are written by marshal exactly as before; journals written before it (marshal) and
before CRC-32C (compact records under zlib's CRC-32) still read; the CRC-32C is the standard one, by the CPU's
instruction and by the table alike; and no byte string makes its reader do anything but return a value or raise
ValueError/TypeError."""

from __future__ import annotations

import marshal
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from wardgate.audit import _records
from wardgate.audit.journal import JournalCorrupt, decode, encode_staged
from wardgate.store.db import Write

LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(),
    st.floats(), st.text(), st.binary(), st.sampled_from(["\ud800", "a\udfffb", "é\x00\u2028"]),
)
VALUE = st.recursive(LEAF, lambda inner: st.one_of(
    st.tuples(inner, inner), st.lists(inner, max_size=4).map(tuple), st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=4),
), max_leaves=30)
RECORD = st.tuples(st.sampled_from(["sessions", "statements", "events"]), st.one_of(st.none(), st.just("id")), VALUE)


def _deep(n: int) -> Any:
    v: Any = "deep"
    for _ in range(n):
        v = (v,)
    return v


DEEP = _deep(20)


def same(a: Any, b: Any) -> bool:
    """Equal, of the same exact types all the way down (True is not 1, a tuple is not a list), NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)  # -0.0 is not 0.0; a NaN keeps its bits
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def checksum(payload: bytes) -> int:
    """The reader's rule: CRC-32C for a compact payload (first byte 1), zlib's CRC-32 for anything else."""
    return _records.crc32c(payload) if payload[:1] == b"\x01" else zlib.crc32(payload)


def frames(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        size, crc = struct.unpack_from("!II", data, pos)
        payload = data[pos + 8 : pos + 8 + size]
        assert checksum(payload) == crc
        out.append(payload)
        pos += 8 + size
    return out


def old_format(records: list[Any]) -> bytes:
    """How every journal was written before the C encoder (a gateway upgraded in place leaves these behind)."""
    return b"".join(struct.pack("!II", len(p), zlib.crc32(p)) + p for p in map(marshal.dumps, records))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORD, max_size=5))
@example([("statements", None, ("s", 1, 2.5, "select $1", None, True, ("d", b"\x00\x01", 1, 0, 1)))])
@example([("events", "id", {"nested": DEEP})])
def test_records_come_back_as_they_went(records: list[Any]) -> None:
    data = encode_staged(records)
    writes, end = decode(data)
    assert end == len(data) and len(writes) == len(records)
    for w, (table, key, values) in zip(writes, records, strict=True):
        assert (w.table, w.key) == (table, key) and same(w.values, values), (w.values, values)
    # and the journal written the old way reads the same
    old, end = decode(old_format(records))
    assert end == len(old_format(records)) and all(same(a.values, b.values) for a, b in zip(old, writes, strict=True))


@given(RECORD)
def test_a_record_is_compact_or_exactly_what_marshal_wrote(record: Any) -> None:
    (payload,) = frames(encode_staged([record]))
    if payload[0] == 1:
        assert same(_records.decode_payload(payload), record)
    else:
        assert payload == marshal.dumps(record)


@pytest.mark.parametrize("values", [
    ("a", [1, 2]),  # a list
    ("a", 2**64),  # an int beyond int64
    ("a", "\ud800"),  # a lone surrogate
    ("a", frozenset({1})),
    (1, 2, DEEP),  # nested deeper than the compact form goes
])
def test_what_the_compact_form_does_not_cover_goes_to_marshal(values: Any) -> None:
    record = ("statements", None, values)
    (payload,) = frames(encode_staged([record]))
    assert payload == marshal.dumps(record)
    assert same(decode(encode_staged([record]))[0][0].values, values)


def test_the_common_records_are_compact() -> None:
    records = [("statements", None, ("s", 1, 2.5, "select $1", None, True, ("d", b"\x00", 1, 0, 1))),
               ("sessions", "id", {"id": "s", "ended_at": 3.25, "bytes_to_client": 10})]
    assert [p[0] for p in frames(encode_staged(records))] == [1, 1]


def test_what_marshal_refuses_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_staged([("events", None, (object(),))])
    with pytest.raises(TypeError):
        _records.encode(("not", "a list"))  # type: ignore[arg-type]


@settings(max_examples=2000)
@given(st.binary(max_size=64))
@example(b"\x00(\xff\xff\xff\xff")  # a count far past the end
@example(b"\x00s\x05\x00\x00\x00abc")  # a length past the end
@example(b"\x00s\x02\x00\x00\x00\xc3\x28")  # invalid UTF-8
@example(b"\x00{\x01\x00\x00\x00(\x00\x00\x00\x00N")  # a tuple as a key: hashable, fine
@example(b"\x00{\x01\x00\x00\x00{\x00\x00\x00\x00N")  # a dict as a key: unhashable
@example(b"\x00" + b"(\x01\x00\x00\x00" * 40 + b"N")  # nested too deep
@example(b"\x00NN")  # trailing bytes
@example(b"")
def test_any_bytes_give_a_value_or_a_clear_error(data: bytes) -> None:
    try:
        _records.decode_payload(b"\x01" + data)
        _records.decode_payload(b"\x00" + data)
        _records.decode_payload(data)
    except (ValueError, TypeError):
        pass


@settings(deadline=None)
@given(st.lists(RECORD, min_size=1, max_size=3), st.data())
def test_a_damaged_payload_with_a_good_checksum_is_corrupt_or_a_value(records: list[Any], data: st.DataObject) -> None:
    """Past the checksum (a compact payload damaged and re-summed), the reader still answers JournalCorrupt or a
    record. Compact payloads only: marshal's reader trusts a damaged count and allocates it (a list of 2**27 slots
    took 250 ms here), which the checksum is there to rule out."""
    payloads = frames(encode_staged(records))
    i = data.draw(st.integers(0, len(payloads) - 1))
    assume(payloads[i][0] == 1)
    p = bytearray(payloads[i])
    at = data.draw(st.integers(0, len(p) - 1))
    p[at] = data.draw(st.integers(0, 255))
    payloads[i] = bytes(p)
    journal = b"".join(struct.pack("!II", len(q), checksum(q)) + q for q in payloads)
    try:
        writes, _ = decode(journal)
    except JournalCorrupt:
        return
    assert all(isinstance(w, Write) for w in writes)


def compact_crc32_format(records: list[Any]) -> bytes:
    """How compact records were written before CRC-32C: first byte 0, zlib's CRC-32."""
    out = []
    for p in frames(encode_staged(records)):
        old = b"\x00" + p[1:] if p[0] == 1 else p
        out.append(struct.pack("!II", len(old), zlib.crc32(old)) + old)
    return b"".join(out)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORD, min_size=1, max_size=4))
def test_compact_records_under_crc32_still_read(records: list[Any]) -> None:
    data = compact_crc32_format(records)
    writes, end = decode(data)
    assert end == len(data)
    assert all(same(w.values, values) for w, (_, _, values) in zip(writes, records, strict=True))
    damaged = bytearray(data)
    damaged[-1] ^= 0x01
    with pytest.raises(JournalCorrupt):
        decode(damaged)


def test_crc32c_is_the_standard_one() -> None:
    """Check values of CRC-32C (RFC 3720, appendix B.4, and the common '123456789' one)."""
    vectors = [(b"", 0), (b"123456789", 0xE3069283), (bytes(32), 0x8A9136AA), (b"\xff" * 32, 0x62A8AB43),
               (bytes(range(32)), 0x46DD794E), (bytes(range(31, -1, -1)), 0x113FDB5C)]
    for data, want in vectors:
        assert _records.crc32c(data) == want
        assert _records.crc32c(data, True) == want
        assert _records.crc32c(bytearray(data)) == want


@settings(max_examples=1000)
@given(st.binary(max_size=300), st.integers(0, 7))
def test_crc32c_by_the_instruction_is_the_tables(data: bytes, skip: int) -> None:
    view = memoryview(data)[min(skip, len(data)):]  # any alignment
    assert _records.crc32c(view) == _records.crc32c(view, True)


def test_crc32c_uses_the_instruction_where_the_cpu_has_it() -> None:
    flags = Path("/proc/cpuinfo").read_text().split()
    assert _records.crc32c_hardware() == ("sse4_2" in flags)
