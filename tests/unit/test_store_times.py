"""The store's fast epoch-to-text conversion must give exactly the text the datetime route gives: the chain's
cross-check compares table rows with their records, so a microsecond rounded differently would read as tampering."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wardgate.audit import _records
from wardgate.store import Store
from wardgate.store.db import sqlite_time


def _reference(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(" ", "microseconds")[:26]


@given(st.floats(min_value=0, max_value=4102444800, allow_nan=False, allow_infinity=False))
def test_any_epoch_time(t: float) -> None:
    assert sqlite_time(t) == _reference(t)


@given(st.integers(min_value=1_600_000_000, max_value=2_000_000_000), st.integers(min_value=0, max_value=1_999_999))
def test_half_microseconds_round_as_datetime_does(sec: int, half_us: int) -> None:
    t = sec + half_us / 2e6  # exact halves (as near as a double gets) are where a rounding rule shows
    assert sqlite_time(t) == _reference(t)


def test_the_second_rolls_over_when_rounding_reaches_it() -> None:
    t = 1_765_000_000.9999996
    assert sqlite_time(t) == _reference(t) == "2025-12-06 05:46:41.000000"


# --- the same text written in C for the shipper's batches (_records.sqlite_rows) -------------------------------

_converter = Store("sqlite://")._time_value  # what the store passes: its own conversion, SQLite's branch


def _c_time(v: object) -> object:
    """What sqlite_rows makes of one time value, with the store's own converter behind it."""
    (row,) = _records.sqlite_rows([("x", v, 7)], [1], _converter)
    assert row[0] == "x" and row[2] == 7  # the other values are left alone
    return row[1]


@given(st.floats(min_value=0, max_value=253402300799.999, allow_nan=False, allow_infinity=False))
@example(0.0)
@example(5e-324)
@example(951782400.0)  # 2000-02-29, a leap day of a century divisible by 400
@example(4107542399.9999995)  # 2100-02-28 23:59:59, the day before a century's non-leap March
@example(253402300799.0)  # the last second of year 9999
def test_c_text_is_the_python_text(t: float) -> None:
    assert _c_time(t) == sqlite_time(t) == _reference(t)


@given(st.integers(min_value=0, max_value=253402300799))
def test_c_text_of_whole_seconds(t: int) -> None:
    assert _c_time(t) == sqlite_time(float(t)) == _reference(t)


@given(st.integers(min_value=1_600_000_000, max_value=2_000_000_000), st.integers(min_value=0, max_value=1_999_999))
def test_c_half_microseconds_round_as_datetime_does(sec: int, half_us: int) -> None:
    t = sec + half_us / 2e6
    assert _c_time(t) == _reference(t)


def test_c_hands_what_it_does_not_write_to_the_converter() -> None:
    """None and text stay; a datetime, a negative time, a time whose microseconds round up to the next second,
    and an int too large for a double go to the converter, whose answer (or error) stands."""
    assert _c_time(None) is None
    assert _c_time("2025-01-01 00:00:00.000000") == "2025-01-01 00:00:00.000000"
    when = datetime(2025, 12, 6, 5, 46, 41, 123456, tzinfo=UTC)
    assert _c_time(when) == "2025-12-06 05:46:41.123456"
    assert _c_time(-1.5) == _reference(-1.5)
    assert _c_time(1_765_000_000.9999996) == "2025-12-06 05:46:41.000000"
    seen: list[object] = []
    assert _records.sqlite_rows([(True, 1.0), (3.0, b"t")], [0], lambda v: seen.append(v) or "conv") == [
        ("conv", 1.0), ("1970-01-01 00:00:03.000000", b"t")]
    assert seen == [True]  # a bool is not an exact int: the converter's
    for bad in (float("nan"), float("inf"), 2**1100, 253402300800.0):
        with pytest.raises((ValueError, OverflowError)):
            _c_time(bad)


def test_c_argument_errors() -> None:
    with pytest.raises(TypeError):
        _records.sqlite_rows(((1.0,),), [0], str)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _records.sqlite_rows([[1.0]], [0], str)  # type: ignore[list-item]
    with pytest.raises(IndexError):
        _records.sqlite_rows([(1.0,)], [1], str)
    with pytest.raises(IndexError):
        _records.sqlite_rows([(1.0,)], [-1], str)
    with pytest.raises(ZeroDivisionError):
        _records.sqlite_rows([(object(),)], [0], lambda v: 1 / 0)


def test_c_text_of_every_day_near_us_and_every_leap_question_to_9999() -> None:
    """Each day from 1970 to 2500, and the last days of February and the first of March of every year to 9999
    (where the Gregorian rules for 4, 100 and 400 years show), at a second and microsecond that vary."""
    days = list(range(0, (date(2500, 1, 1) - date(1970, 1, 1)).days))
    for year in range(1970, 10000):
        first_march = (date(year, 3, 1) - date(1970, 1, 1)).days
        days += [first_march - 2, first_march - 1, first_march]
    times = [d * 86400 + (d * 7919) % 86400 + (d % 1000) / 1000 for d in days]
    rows = _records.sqlite_rows([(t,) for t in times], [0], _converter)
    assert [r[0] for r in rows] == [_reference(t) for t in times]


@pytest.mark.parametrize("fraction", [1 / 128, 3 / 128, 5 / 128, 127 / 128])
def test_exact_half_microseconds_round_to_even(fraction: float) -> None:
    """t - int(t) = k/128 makes (t - int(t)) * 1e6 an exact half (1/128 s = 7,812.5 us): there round-half-even
    and round-half-away differ, and datetime rounds to even."""
    t = 1_765_000_000 + fraction
    assert (t - int(t)) * 1e6 % 1 == 0.5
    assert _c_time(t) == sqlite_time(t) == _reference(t)


def test_c_any_number_of_time_columns() -> None:
    times = [1_765_000_000.5 + k for k in range(12)]
    (row,) = _records.sqlite_rows([(*times, "end")], list(range(12)), _converter)
    assert list(row) == [_reference(t) for t in times] + ["end"]
