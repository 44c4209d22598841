"""single_statement's own cache (decide._SINGLE): the same answers as classifying afresh, bounded in entries and
in the size of a text it keeps."""

from __future__ import annotations

from wardgate.policy import decide
from wardgate.policy.sql import classify


def test_cached_answers_are_the_classifiers() -> None:
    for text in ["select 1", "SELECT * FROM t WHERE id = 42", "", "select 1; select 2", "delete from t", "!!"]:
        first = decide.single_statement(text)
        again = decide.single_statement(text)
        assert again is first
        infos = classify(text)
        if len(infos) == 1:
            assert first == infos[0]
        elif not infos:
            assert (first.kind, first.redacted) == ("empty", "")
        else:
            assert first.kind == "multiple" and first.redacted == "; ".join(i.redacted or "?" for i in infos)


def test_bounded() -> None:
    long_text = "select '" + "x" * 9000 + "'"
    decide.single_statement(long_text)
    assert long_text not in decide._SINGLE  # too long to keep here (classify's LRU still has it)
    for i in range(decide._SINGLE_ENTRIES + 10):
        decide.single_statement(f"select {i} as c")
        assert len(decide._SINGLE) <= decide._SINGLE_ENTRIES
