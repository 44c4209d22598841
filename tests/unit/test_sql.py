"""Classification and literal redaction use PostgreSQL's own parser and lexer."""

from __future__ import annotations

import pytest

from wardgate.policy.sql import classify, redact


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("select 1", ["select"]),
        ("SELECT 1; INSERT INTO t VALUES (1); delete from t where a = 1", ["select", "insert", "delete"]),
        ("update t set a = 2", ["update"]),
        ("DROP TABLE t", ["drop"]),
        ("truncate t", ["truncate"]),
        ("create table t (a int)", ["create"]),
        ("CREATE INDEX i ON t (a)", ["create"]),
        ("alter table t add column b int", ["alter"]),
        ("grant select on t to bob", ["grant"]),
        ("begin; commit", ["transaction", "transaction"]),
        ("copy t to stdout", ["copy"]),
        ("do $$ begin perform 1; end $$", ["do"]),
        ("set search_path = x", ["set"]),
        ("prepare p as select 1", ["prepare"]),
        ("explain select 1", ["explain"]),
        ("", []),
        (" ; ; ", []),
    ],
)
def test_kinds(text: str, kinds: list[str]) -> None:
    assert [i.kind for i in classify(text)] == kinds


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("select * from c where email = 'jane@example.com'", "jane@example.com"),
        ("insert into c values (4111111111111111, 'x')", "4111111111111111"),
        ("select E'sec\\'ret'", "sec"),
        ("select $tag$hunter2$tag$", "hunter2"),
        ("select U&'d\\0061t\\+000061'", "d\\0061"),
        ("select x'1f2e', b'1010'", "1f2e"),
        ("select 'ünïcödé' , 'b'", "ünïcödé"),
        ("select 3.14159", "3.14159"),
    ],
)
def test_redaction_removes_every_literal(text: str, secret: str) -> None:
    (info,) = classify(text)
    assert info.redacted is not None
    assert secret not in info.redacted
    assert "$1" in info.redacted


def test_placeholders_continue_after_existing_parameters() -> None:
    assert redact("select $1, 'a', $2, 5") == "select $1, $3, $2, $4"


def test_unparsable_statement_keeps_no_quoted_source() -> None:
    (info,) = classify("selec 'card 4111111111111111'")
    assert info.kind == "unparsed"
    assert info.redacted == "selec $1"
    (bad,) = classify("select 'unterminated 4111")
    assert bad.kind == "unparsed" and bad.redacted is None
    assert bad.error is not None and "4111" not in bad.error


def test_classification_is_cached() -> None:
    text = "select 42 as cached"
    assert classify(text) is classify(text)


def test_each_statement_is_redacted_on_its_own() -> None:
    alone = classify("select * from t where email = 'c7@example.com'")
    together = classify("select 1; select * from t where email = 'c7@example.com'")
    assert together[1] == alone[0]
    assert alone[0].redacted == "select * from t where email = $1"


def test_prepared_names() -> None:
    from wardgate.policy.sql import prepared_names

    ops = prepared_names("prepare p (int, text) as insert into t values ($1, $2); deallocate p; "
                         "deallocate all; discard all; discard plans; select 1")
    assert ops == [("prepare", "p", "insert into t values ($1, $2)"), ("deallocate", "p", None),
                   ("deallocate", None, None), ("deallocate", None, None)]
