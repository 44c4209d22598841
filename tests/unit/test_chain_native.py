"""The chain's C record encoder (wardgate/audit/_records.c): its text is json's, byte for byte, for every value it
writes, and it declines (None) every value it does not, which chain.canonical_insert then gives to json. The
entry hash covers this text, so one byte of difference would make every verification fail (or, worse, a
re-implementation of the documented format disagree)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wardgate.audit import _records
from wardgate.audit.chain import canonical, canonical_insert

WRITTEN = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(),
    st.text(alphabet=st.characters(max_codepoint=0x7F)),  # ASCII, the escapes' territory
    st.sampled_from(["\x00\x1f\x7f\"\\\b\f\n\r\t/", "é\u2028\u2029\U0001f600", "", "\ufeff"]),
)
DECLINED = st.one_of(
    st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), "\ud800", "a\udfffb", b"bytes", (1,), [1],
                     {"a": 1}]),
)


def python_text(table: str, values: tuple[Any, ...]) -> str:
    """What json gives for the record, the way chain.canonical did before the C encoder."""
    return json.dumps([table, None, list(values)], sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


@settings(max_examples=600)
@given(st.text(min_size=1, max_size=12), st.lists(WRITTEN, max_size=20).map(tuple))
@example("statements", ("s", 1, 1765000000.1234567, 0.081, -0.0, 1e16, 1e-5, 5e-324, 1.7976931348623157e308,
                        True, False, None, 2**63 - 1, -(2**63), "SELECT 1"))
def test_its_text_is_jsons(table: str, values: tuple[Any, ...]) -> None:
    assert _records.insert_text(table, values, -1, None) == python_text(table, values)
    assert canonical_insert(table, values) == canonical(table, None, values)


@given(st.lists(WRITTEN, min_size=1, max_size=8).map(tuple), st.data())
def test_the_replacement_takes_its_slot(values: tuple[Any, ...], data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    digest = "sha256:" + "0" * 64
    expected = python_text("statements", (*values[:at], digest, *values[at + 1 :]))
    assert _records.insert_text("statements", values, at, digest) == expected
    assert canonical_insert("statements", values, at, digest) == expected


@given(st.lists(WRITTEN, max_size=6).map(tuple), DECLINED, st.data())
def test_what_it_does_not_write_goes_to_json(values: tuple[Any, ...], odd: Any, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(values)))
    record = (*values[:at], odd, *values[at:])
    assert _records.insert_text("statements", record, -1, None) is None
    try:
        expected: str | type[Exception] = canonical("statements", None, record)
    except (ValueError, TypeError) as exc:  # NaN, a lone surrogate later on: json's own verdict stands
        expected = type(exc)
    if isinstance(expected, str):
        assert canonical_insert("statements", record) == expected
    else:
        with pytest.raises(expected):
            canonical_insert("statements", record)


def test_a_declined_table_name_and_bad_arguments() -> None:
    assert _records.insert_text("\ud800", (1,), -1, None) is None
    with pytest.raises(TypeError):
        _records.insert_text("statements", [1], -1, None)  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        _records.insert_text("statements", (1,), 1, "x")
    with pytest.raises(TypeError):
        _records.insert_text("statements", (1,), -1)  # type: ignore[call-arg]
