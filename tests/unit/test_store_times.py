"""The store's fast epoch-to-text conversion must give exactly the text the datetime route gives: the chain's
cross-check compares table rows with their records, so a microsecond rounded differently would read as tampering."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

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
