"""The C fast path for values that are one sensitive value each changes nothing but speed.

``ResultPlan`` hands the candidates of a scanned column to ``bulk.whole_kinds``; values it recognises are masked
in place in the partial style, the rest go to the scanner. Here ``whole_kinds`` is replaced by the exact Python
answer (``whole_kinds_py``), or by one that is unsure about every other value, and the output must equal the
scanner-only path byte for byte, counts included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wardgate.frontends.pg_masking import ROWS, SessionMasker
from wardgate.masking import Scanner, Style
from wardgate.masking import results as results_module
from wardgate.masking.bulk import UNSURE, whole_kinds_py
from wardgate.masking.detectors import Prefilter
from wardgate.masking.policy import ColumnPattern, MaskingPolicy, MaskRule, expand_detectors
from wardgate.masking.results import Column, Counts, Kind, ResultPlan
from wardgate.protocols.postgres import decode, encode

PIECES = [
    b"jane.doe@example.com", b"x@2x.png", b"icon@2x.png", b".lead@example.org", b"4111 1111 1111 1111",
    b"4111111111111111", b"5555-5555-5555-4444", b"378282246310005", b"4111111111111112", b"+1 555 123 4567",
    b"555-123-4567", b"(555) 123-4567", b"123-45-6789", b"666-45-6789", b"192.168.1.10", b"010.1.1.1",
    b"DE89 3704 0044 0532 0130 00", b"::1", b"plain", b"", b" ", b"Anna", b"12.50", b"2024-01-05",
    b"AKIAIOSFODNN7EXAMPLE", b"z\xc3\xabe@example.com",
]
VALUE = st.one_of(st.sampled_from(PIECES), st.lists(st.sampled_from(PIECES), min_size=2, max_size=3).map(b" ".join),
                  st.binary(max_size=20))


def plan(style: Style, names: Sequence[str] = ("all",)) -> ResultPlan:
    masking = MaskingPolicy([MaskRule("r", style, (), expand_detectors(names))], key=b"k" * 32).for_session("c", [])[0]
    assert masking is not None
    return ResultPlan(masking, [Column("a", (), False, Kind.TEXT), Column("b", (), False, Kind.TEXT)])


def exact(scanner: Scanner) -> Callable[..., list[int]]:
    def kinds(buf: bytes, starts: Sequence[int], ends: Sequence[int], _p: Prefilter, skip: int = 0) -> list[int]:
        return whole_kinds_py(buf, starts, ends, scanner, skip)
    return kinds


def half_sure(scanner: Scanner) -> Callable[..., list[int]]:
    def kinds(buf: bytes, starts: Sequence[int], ends: Sequence[int], _p: Prefilter, skip: int = 0) -> list[int]:
        answer = whole_kinds_py(buf, starts, ends, scanner, skip)
        return [k if i % 2 else UNSURE for i, k in enumerate(answer)]
    return kinds


def run(p: ResultPlan, rows: list[list[bytes | None]]) -> tuple[bytes, Counts]:
    counts: Counts = {}
    return p.mask_rows(b"".join(encode.data_row(r) for r in rows), ROWS, counts), counts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.one_of(st.none(), VALUE), min_size=2, max_size=2), min_size=1, max_size=8),
       st.sampled_from([Style.PARTIAL, Style.FULL]), st.sampled_from([exact, half_sure]))
def test_the_fast_path_changes_nothing_but_speed(monkeypatch: pytest.MonkeyPatch, rows: list[list[bytes | None]],
                                                  style: Style, fast: Callable[[Scanner], Callable[..., list[int]]]
                                                  ) -> None:
    p = plan(style)
    assert p.scanner is not None
    with monkeypatch.context() as m:
        m.setattr(results_module, "whole_kinds", lambda *a, **k: None)
        slow = run(p, rows)
    with monkeypatch.context() as m:
        m.setattr(results_module, "whole_kinds", fast(p.scanner))
        quick = run(p, rows)
    assert quick == slow


# --- the relay's own row test (SessionMasker.clean_test) -----------------------------------------------------------

KINDS = st.sampled_from([Kind.TEXT, Kind.TEXT, Kind.NOT_TEXT, Kind.JSONB_BINARY, Kind.STRUCTURED])
DETECTORS = st.sampled_from([("all",), ("email",), ("credit_card", "phone"), ("ipv4", "jwt")])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), VALUE), min_size=3, max_size=3), min_size=1, max_size=8),
       st.lists(KINDS, min_size=3, max_size=3), DETECTORS)
def test_a_run_the_clean_test_passes_is_one_mask_rows_leaves_alone(rows: list[list[bytes | None]],
                                                                    kinds: list[Kind], names: tuple[str, ...]) -> None:
    """The relay skips mask_rows for a run when rows_may_match answers False with the clean test's arguments: that
    is only right if mask_rows would have returned the run unchanged, with nothing counted."""
    masking = MaskingPolicy([MaskRule("r", Style.PARTIAL, (), expand_detectors(names))],
                            key=b"k" * 32).for_session("c", [])[0]
    assert masking is not None
    p = ResultPlan(masking, [Column(f"c{i}", (), False, k) for i, k in enumerate(kinds)])
    test = SessionMasker.clean_test(p)
    buf = b"".join(encode.data_row(r) for r in rows)
    if test is None:
        assert not p.scans
        return
    if not decode.rows_may_match(buf, *test):
        counts: Counts = {}
        assert p.mask_rows(buf, ROWS, counts) is buf
        assert counts == {}


def test_no_clean_test_for_a_plan_that_marks_a_column() -> None:
    """A marked column is masked in every row, whatever the detectors find: no run passes untouched."""
    rule = MaskRule("cols", Style.PARTIAL, columns=(ColumnPattern.parse("*.email"),),
                    detectors=expand_detectors(("all",)))
    masking = MaskingPolicy([rule], key=b"k" * 32).for_session("c", [])[0]
    assert masking is not None
    marked = ResultPlan(masking, [Column("email", (), False, Kind.TEXT), Column("note", (), False, Kind.TEXT)])
    assert marked.whole
    assert SessionMasker.clean_test(marked) is None
    scan_only = ResultPlan(masking, [Column("note", (), False, Kind.TEXT)])
    assert SessionMasker.clean_test(scan_only) == ((0,), (0,), scan_only.scanner.prefilter.native_bits,  # type: ignore[union-attr]
                                                   scan_only.scanner.prefilter.may_match)  # type: ignore[union-attr]
    assert SessionMasker.clean_test(None) is None
