"""The C prefilter over chosen DataRow columns (``_datarow.may_match``) answers what its specification answers.

The specification is :func:`wardgate.protocols.postgres.decode.data_rows_may_match` with the pure-Python
prefilter (``Prefilter.reference``) of the chosen built-in detectors as its test. Result masking asks this of
every result before it reads a value, so a wrong False would relay a sensitive value unmasked: the property tests
draw rows of values that hold triggers (or almost do) in random columns, random column choices and skips, random
detector sets, and malformed runs, which both must reject (ValueError / ProtocolViolation).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.masking.detectors import BUILTIN_DETECTORS, Prefilter
from wardgate.protocols.postgres import _datarow, decode
from wardgate.protocols.postgres.encode import data_row
from wardgate.protocols.postgres.framing import ProtocolViolation

MANY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = tuple(BUILTIN_DETECTORS)
ALL = (1 << len(NAMES)) - 1

# Pieces that make or nearly make a trigger, so that random values hit every branch of the prefilter.
PIECES = [b"4111 1111 1111 1111", b"4111111111111", b"411111111111", b"078-05-1120", b"078-05", b"555.123.4567",
          b"(555)", b"+44", b"+0", b"GB82WEST12345698765432", b"GB82", b"10.0.0.1", b"1.2", b"::1", b"fe80:1:2:3:",
          b"a@b", b"@", b"eyJ", b"AKIAX", b"ASIA", b"PRIVATE KEY", b"ghp_", b"github_pat_", b"sk_live_", b"xoxb-",
          b"ORD-2024-000123", b"user_12345", b"12345.67", b"-", b"_", b".", b" ", b"J", b"I", b"V", b"\xc3\xa9"]
text = st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=6)), max_size=5).map(b"".join)
values = st.one_of(st.none(), st.just(b""), text)


@st.composite
def cases(draw: st.DrawFn) -> tuple[bytes, tuple[int, ...], tuple[int, ...], int]:
    width = draw(st.integers(0, 8))
    nrows = draw(st.integers(0, 6))
    rows = [draw(st.lists(values, min_size=width, max_size=width)) for _ in range(nrows)]
    cols = tuple(draw(st.lists(st.integers(0, width - 1), max_size=5))) if width else ()
    skips = tuple(draw(st.integers(0, 2)) for _ in cols)
    bits = draw(st.integers(1, ALL))
    return b"".join(data_row(r) for r in rows), cols, skips, bits


def reference(buf: bytes, cols: tuple[int, ...], skips: tuple[int, ...], bits: int) -> bool | None:
    """The Python answer, or None when it rejects the run."""
    prefilter = Prefilter([BUILTIN_DETECTORS[n] for i, n in enumerate(NAMES) if bits >> i & 1])
    try:
        return decode.data_rows_may_match(buf, cols, skips, prefilter.reference)
    except ProtocolViolation:
        return None


def native(buf: bytes, cols: tuple[int, ...], skips: tuple[int, ...], bits: int) -> bool | None:
    try:
        return _datarow.may_match(buf, cols, skips, bits)
    except ValueError as exc:
        assert str(exc)
        return None


@MANY
@given(cases())
@example((b"", (), (), ALL))
@example((b"", (0, 3), (0, 0), ALL))  # no row: no row lacks a column
@example((data_row([b"x", b"4111111111111111"]), (0,), (0,), ALL))  # the card is in a column not chosen
@example((data_row([b"x", b"4111111111111111"]), (1,), (0,), ALL))
@example((data_row([b"\x01a@b"]), (0,), (1,), ALL))  # the skip (jsonb's version byte) is not scanned
@example((data_row([b"@b"]), (0,), (1,), ALL))  # ... so the byte before an @ is not seen either
def test_equals_reference(case: tuple[bytes, tuple[int, ...], tuple[int, ...], int]) -> None:
    buf, cols, skips, bits = case
    assert native(buf, cols, skips, bits) == reference(buf, cols, skips, bits), case


NEAR = b"0123456789 .-:()+@_AaDEIJKSVPRTyehxvbtopr\x00\x80"  # the bytes the prefilter's triggers are made of
short = st.lists(st.sampled_from(NEAR), max_size=14).map(bytes)


@MANY
@given(st.lists(st.lists(st.one_of(st.none(), short), min_size=3, max_size=3), min_size=1, max_size=4),
       st.integers(1, ALL), st.sampled_from([(0, 1), (0, 2), (1, 2), (0, 1, 2), (2, 0)]))
@example([[b"Jos\xc3\xa9 Kim", b"user_12345", b"ORD-2024-000123"]], ALL, (0, 1, 2))
@example([[b"4111 1111", b"x", b"1111 1111"]], ALL, (0, 2))  # a card split across two values is no card
@example([[b"4111111", b"", b"111111"]], ALL, (0, 1, 2))  # nor thirteen digits split across values
def test_short_rows(rows: list[list[bytes | None]], bits: int, cols: tuple[int, ...]) -> None:
    """Rows whose scanned values are short take one test for the span from the first to the last of them
    (region_clear_avx2 in _prefilter_core.h), headers included: near misses of every trigger, within a value and
    across its neighbours, give the reference's answer."""
    buf = b"".join(data_row(r) for r in rows)
    skips = (0,) * len(cols)
    assert native(buf, cols, skips, bits) == reference(buf, cols, skips, bits)


#: The smallest form of each trigger of the prefilter (docs/masking.md), each True alone.
SMALLEST = [b"4111111111111", b"4111 111 111", b"078-05-1120", b"555.123.4567", b"1.2.3.", b"(555)", b"(012)",
            b"+1", b"+9", b"GB82WEST1234567", b"GB82 AAAA BBBB", b"::", b":a:b:c:", b"a@", b"eyJ", b"AKIA", b"ASIA",
            b"PRIVATE KEY", b"ghp_", b"ghs_", b"github_pat_", b"sk_live_", b"xoxb-", b"xoxp-", b"x@y"]


@pytest.mark.parametrize("trigger", SMALLEST)
def test_every_trigger_at_every_offset_of_a_short_row(trigger: bytes) -> None:
    """The row test reads the span of a row's scanned values in one 64-byte step (AVX-512) or two 32-byte
    halves (AVX2): a trigger at any offset of it, in the first value or the last, straddling the halves or not, at
    the buffer's end or not, is found (True, as the reference says)."""
    assert reference(data_row([trigger]), (0,), (0,), ALL) is True
    for pad in range(0, 62 - len(trigger)):
        for row in ([b"x" * pad + trigger, b"y"], [b"y", b"x" * pad + trigger],
                    [b"x" * (pad // 2), b"z" * (pad - pad // 2) + trigger]):
            buf = data_row(row)
            assert native(buf, (0, 1), (0, 0), ALL) is True, row
            assert native(buf + data_row([b"a", b"b"]), (0, 1), (0, 0), ALL) is True, row


@pytest.mark.parametrize("cap", ["portable", "avx2"])
def test_the_narrower_paths_give_the_same_answers(cap: str) -> None:
    """This machine runs the row test in AVX-512 where it can; WARDGATE_PREFILTER_ISA caps it, so that the paths
    of other CPUs run here too: AVX2 (the same region test in two 32-byte halves) and none (every value
    scanned). Near misses, the smallest triggers at every offset and the batches' edges, against the reference."""
    code = (
        "import random\n"
        "from tests.unit.test_datarow_may_match_native import NEAR, SMALLEST, ALL, native, reference\n"
        "from tests.unit.test_datarow_may_match_native import test_every_trigger_at_every_offset_of_a_short_row\n"
        "from wardgate.protocols.postgres.encode import data_row\n"
        "rng = random.Random(7)\n"
        "for _ in range(3000):\n"
        "    row = [bytes(rng.choice(NEAR) for _ in range(rng.randint(0, 14))) for _ in range(3)]\n"
        "    if rng.random() < 0.2:\n"
        "        row[rng.randint(0, 2)] += rng.choice(SMALLEST)\n"
        "    buf = data_row(row)\n"
        "    assert native(buf, (0, 1, 2), (0, 0, 0), ALL) == reference(buf, (0, 1, 2), (0, 0, 0), ALL), row\n"
        "    run = b''.join(data_row(r) for r in [row] * rng.randint(1, 40))\n"
        "    assert native(run, (0, 2), (0, 0), ALL) == reference(run, (0, 2), (0, 0), ALL), row\n"
        "for trigger in SMALLEST:\n"
        "    test_every_trigger_at_every_offset_of_a_short_row(trigger)\n"
    )
    env = {**os.environ, "WARDGATE_PREFILTER_ISA": cap}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=Path(__file__).resolve().parents[2])


@pytest.mark.parametrize("cap", [None, "avx2", "portable", "sse9"])
def test_the_path_is_the_widest_the_cpu_has_under_the_cap(cap: str | None) -> None:
    """The in-process tests run the widest row test the CPU has (AVX-512 here, which valgrind hides), and the cap
    narrows it: what ran is what was meant to. An unknown cap is no cap."""
    flags = set(Path("/proc/cpuinfo").read_text().split())
    widest = "avx512" if {"avx512f", "avx512bw"} <= flags else "avx2" if "avx2" in flags else "portable"
    expected = {None: widest, "sse9": widest, "portable": "portable",
                "avx2": "portable" if widest == "portable" else "avx2"}[cap]
    env = {k: v for k, v in os.environ.items() if k != "WARDGATE_PREFILTER_ISA"}
    if cap is not None:
        env["WARDGATE_PREFILTER_ISA"] = cap
    code = "from wardgate.protocols.postgres import _datarow; print(_datarow.isa())"
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == expected


@MANY
@given(cases(), st.data())
def test_broken_runs(case: tuple[bytes, tuple[int, ...], tuple[int, ...], int], data: st.DataObject) -> None:
    """Truncated, corrupted or spliced runs: the same answer or the same refusal."""
    buf, cols, skips, bits = case
    if not buf:
        return
    how = data.draw(st.sampled_from(["truncate", "corrupt", "splice"]))
    at = data.draw(st.integers(0, len(buf) - 1))
    if how == "truncate":
        buf = buf[:at]
    elif how == "corrupt":
        buf = buf[:at] + bytes([data.draw(st.integers(0, 255))]) + buf[at + 1 :]
    else:
        buf = buf[:at] + data.draw(st.binary(min_size=1, max_size=8)) + buf[at:]
    assert native(buf, cols, skips, bits) == reference(buf, cols, skips, bits), (buf, cols, skips, bits)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 50), st.integers(2, 5), st.data())
def test_long_runs_across_the_batches_of_the_row_test(nrows: int, width: int, data: st.DataObject) -> None:
    """The AVX2 row test finds the regions of 16 rows before it tests them: runs of up to 50 rows, mostly plain
    with a trigger here and there, whole or broken at any byte, give the reference's answer or refusal wherever
    a hit, a NULL or the break falls against the batches' edges."""
    plain = st.sampled_from([b"Anna Kim", b"user_12345", b"ORD-2024-000123", b"", b"12345.67", b"Jos\xc3\xa9"])
    value = st.one_of(st.none(), plain, plain, plain, plain, st.sampled_from(SMALLEST))
    rows = [data.draw(st.lists(value, min_size=width, max_size=width)) for _ in range(nrows)]
    cols = tuple(data.draw(st.lists(st.integers(0, width - 1), min_size=2, max_size=4)))
    buf = b"".join(data_row(r) for r in rows)
    if buf and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(buf) - 1))
        buf = buf[:at] + bytes([data.draw(st.integers(0, 255))]) + buf[at + 1 :] if data.draw(st.booleans()) \
            else buf[:at]
    skips = (0,) * len(cols)
    assert native(buf, cols, skips, ALL) == reference(buf, cols, skips, ALL)


def test_stops_at_the_first_row_that_may_match() -> None:
    """Rows after a hit are not read (as in the reference): a broken tail does not turn a True into an error."""
    buf = data_row([b"jane@example.com"]) + b"D\x00\x00"
    assert _datarow.may_match(buf, (0,), (0,), ALL) is True
    assert decode.rows_may_match(buf, (0,), (0,), ALL, Prefilter(BUILTIN_DETECTORS.values()).reference) is True
    with pytest.raises(ProtocolViolation, match="malformed DataRow"):
        decode.rows_may_match(data_row([b"plain"]) + b"D\x00\x00", (0,), (0,), ALL, lambda v: False)


def test_rows_may_match_falls_back_to_the_test_without_bits() -> None:
    """Custom detectors have no bits: the Python test runs, on exactly the chosen values after their skips."""
    seen: list[bytes] = []

    def test(value: memoryview) -> bool:
        seen.append(bytes(value))
        return False

    buf = data_row([b"a", None, b"xbc", b""]) + data_row([b"d", b"e", b"yf", b"g"])
    assert decode.rows_may_match(buf, (2, 1, 3), (1, 0, 0), 0, test) is False
    assert seen == [b"bc", b"f", b"e", b"g"]


def test_argument_errors() -> None:
    row = data_row([b"x"])
    with pytest.raises(TypeError):
        _datarow.may_match(row, (0,), (0,))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _datarow.may_match(row, (0,), (0,), "all")  # type: ignore[arg-type]
    for bits in (0, ALL + 1, -1, 1 << 70):
        with pytest.raises(ValueError, match="bit set"):
            _datarow.may_match(row, (0,), (0,), bits)
    with pytest.raises(ValueError, match="one skip per column"):
        _datarow.may_match(row, (0,), (), ALL)
    with pytest.raises(ValueError, match="skips"):
        _datarow.may_match(row, (0,), (-1,), ALL)
    with pytest.raises(ValueError, match="fewer values"):
        _datarow.may_match(row, (1,), (0,), ALL)
    with pytest.raises(ValueError, match="fewer values"):
        _datarow.may_match(row, (-1,), (0,), ALL)
    many = data_row([b"x"] * 40 + [b"4111111111111111"])
    assert _datarow.may_match(many, tuple(range(41)), (0,) * 41, ALL) is True
    assert _datarow.may_match(many, tuple(range(40)), (0,) * 40, ALL) is False
