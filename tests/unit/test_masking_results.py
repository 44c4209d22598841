"""Masking result rows: plans per result shape (column rules, detectors, column kinds), runs of DataRows masked in
place or re-framed, session scopes of masking rules, free text and the prefilter. Pure: bytes in, bytes out."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.frontends.pg_masking import ROWS
from wardgate.masking import BUILTIN_DETECTORS, Detector, Scanner, Style, custom, full_token, hash_token, mask_text
from wardgate.masking.policy import ColumnName, ColumnPattern, MaskingPolicy, MaskRule, SessionMasking
from wardgate.masking.results import Column, Counts, Kind, ResultPlan, mask_free_text, mask_whole
from wardgate.protocols.postgres import decode, encode

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
ALL = Scanner.builtin()
BUILTINS = tuple(BUILTIN_DETECTORS)
Row = tuple[bytes | None, ...]


def session(*rules: MaskRule, key: bytes = KEY, custom_detectors: Sequence[Detector] = ()) -> SessionMasking:
    masking, _ = MaskingPolicy(list(rules), custom_detectors, key=key).for_session("c", ["g"])
    assert masking is not None
    return masking


def detect(style: Style, *names: str, rule: str = "detect") -> MaskRule:
    return MaskRule(rule, style, detectors=names or BUILTINS)


def mark(style: Style, *patterns: str, rule: str = "cols") -> MaskRule:
    return MaskRule(rule, style, columns=tuple(ColumnPattern.parse(p) for p in patterns))


def expr(name: str, kind: Kind = Kind.TEXT) -> Column:
    """A result column that no table names (an expression)."""
    return Column(name, (), False, kind)


def table_col(table: str, column: str, kind: Kind = Kind.TEXT, schema: str = "public", name: str = "") -> Column:
    return Column(name or column, (ColumnName(schema, table, column),), True, kind)


def run_of(rows: Sequence[Sequence[bytes | None]]) -> bytes:
    return b"".join(encode.data_row(r) for r in rows)


def decode_run(buf: bytes) -> list[Row]:
    """Every DataRow of a run, decoded with the gateway's own decoder up to the very last byte."""
    rows: list[Row] = []
    pos = 0
    while pos < len(buf):
        spans, end = decode.data_row_spans(buf, pos)
        assert end > pos
        rows.append(tuple(None if sp is None else buf[sp[0] : sp[1]] for sp in spans))
        pos = end
    assert pos == len(buf)
    return rows


def apply(plan: ResultPlan, rows: Sequence[Sequence[bytes | None]]) -> tuple[list[Row], Counts, bytes, bytes]:
    """Mask a run of these rows: (decoded output rows, counts, input run, output run)."""
    run = run_of(rows)
    counts: Counts = {}
    out = plan.mask_rows(run, ROWS, counts)
    decoded = decode_run(out)
    assert len(decoded) == len(rows)
    assert all(len(r) == len(plan.columns) for r in decoded)
    return decoded, counts, run, out


# --- runs of rows: framing ----------------------------------------------------------------------------------------


def test_a_run_stays_a_valid_run_of_the_same_shape_in_every_style() -> None:
    rows: list[list[bytes | None]] = [
        [b"plain", b"jane@example.com", None],
        [b"", b"call +1 (555) 123-4567 now", b"x"],
        [None, None, b"4111 1111 1111 1111"],
        [b"z\xc3\xabe@example.com \xe2\x9c\x93", b"\xe8\xaf\xb7", b"123-45-6789 and 192.168.1.1"],
    ]
    columns = [expr("a"), expr("b"), expr("c")]
    for style in Style:
        decoded, counts, _, _ = apply(ResultPlan(session(detect(style)), columns), rows)
        assert decoded[0][0] == b"plain" and decoded[1][0] == b"" and decoded[2][0] is None
        assert decoded[2][1] is None and decoded[3][1] == b"\xe8\xaf\xb7"  # NULLs and unmatched values as they were
        assert sum(counts.values()) == 6
        for row in decoded:
            assert all(v is None or ALL.find(v) == [] for v in row)


def test_nothing_to_mask_returns_the_run_itself() -> None:
    plan = ResultPlan(session(detect(Style.FULL)), [expr("a"), expr("b")])
    run = run_of([[b"2024-01-05", b"1234.56"], [None, b"shipped"], [b"", b"550e8400-e29b-41d4-a716-446655440000"]])
    counts: Counts = {}
    assert plan.mask_rows(run, ROWS, counts) is run and counts == {}
    # candidates that do not validate: the prefilter lets the run through, nothing changes
    run = run_of([[b"4111 1111 1111 1112", b"1.2.3.4.5"], [b"123-00-4567", b"ORD-4111111111111112"]])
    assert plan.mask_rows(run, ROWS, counts) is run and counts == {}


def test_an_idle_plan_relays_rows_untouched() -> None:
    masking = session(mark(Style.FULL, "customers.email"))
    plan = ResultPlan(masking, [table_col("orders", "email"), expr("note")])  # no detectors, no marked column
    assert plan.idle
    run = run_of([[b"jane@example.com", b"4111 1111 1111 1111"]])
    assert plan.mask_rows(run, ROWS, {}) is run


def test_partial_style_rewrites_a_run_in_place() -> None:
    rows: list[list[bytes | None]] = [
        [b"jane@example.com", b"ok"],
        [b"x", b"card 4111-1111-1111-1111, z\xc3\xab@example.org"],
    ]
    decoded, counts, run, out = apply(ResultPlan(session(detect(Style.PARTIAL)), [expr("a"), expr("b")]), rows)
    assert len(out) == len(run)
    assert decoded == [
        (b"j***@*******.com", b"ok"),
        (b"x", b"card ****-****-****-1111, z**@*******.org"),
    ]
    assert counts == {("detect", "a", "email"): 1, ("detect", "b", "credit_card"): 1, ("detect", "b", "email"): 1}


def test_a_later_row_that_changes_length_switches_from_in_place_to_re_framing() -> None:
    # email: partial (same length: could be written in place); phone: full (longer: the row must be re-framed)
    masking = session(detect(Style.PARTIAL, "email", rule="mails"), detect(Style.FULL, "phone", rule="phones"))
    plan = ResultPlan(masking, [expr("a"), expr("b")])
    rows: list[list[bytes | None]] = [
        [b"jane@example.com", b"nothing"],  # same-size edits first
        [b"plain", b"bob@example.org"],
        [b"nothing here", None],  # unchanged, between edits
        [b"ann@example.net", b"+1 555 123 4567"],  # a same-size edit, then a longer one, in one row
        [b"x", b"y"],  # unchanged, after the first length change
        [b"kim@example.io", b"plain"],  # a same-size edit after it
        [b"", b"call 555-123-4567"],  # and a length change again
        [b"last", None],  # unchanged tail
    ]
    decoded, counts, _, _ = apply(plan, rows)
    assert decoded == [
        (b"j***@*******.com", b"nothing"),
        (b"plain", b"b**@*******.org"),
        (b"nothing here", None),
        (b"a**@*******.net", b"[redacted:phone]"),
        (b"x", b"y"),
        (b"k**@*******.io", b"plain"),
        (b"", b"call [redacted:phone]"),
        (b"last", None),
    ]
    assert counts == {
        ("mails", "a", "email"): 3,
        ("mails", "b", "email"): 1,
        ("phones", "b", "phone"): 2,
    }


def test_a_length_change_in_the_first_row_then_same_size_edits() -> None:
    plan = ResultPlan(session(detect(Style.FULL, "email"), detect(Style.PARTIAL, "ssn", rule="ssns")), [expr("a")])
    decoded, _, _, _ = apply(plan, [[b"jane@example.com"], [b"123-45-6789"], [b"plain"], [b"123-45-6789"]])
    assert decoded == [(b"[redacted:email]",), (b"1**-**-***9",), (b"plain",), (b"1**-**-***9",)]


def test_null_style_re_frames_a_value_to_null() -> None:
    plan = ResultPlan(session(detect(Style.PARTIAL, "email"), detect(Style.NULL, "ssn", rule="ssns")),
                      [expr("a"), expr("b")])
    decoded, counts, _, _ = apply(plan, [[b"jane@example.com", b"1"], [b"ssn 123-45-6789", b"2"], [b"a@b.co", b"3"]])
    assert decoded == [(b"j***@*******.com", b"1"), (None, b"2"), (b"a@*.co", b"3")]
    assert counts == {("detect", "a", "email"): 2, ("ssns", "a", "ssn"): 1}


# --- runs of rows: properties -------------------------------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
SENSITIVE = [
    "jane.doe@example.com", "zoë@example.com", "用户@例子.xn--fiqs8s", "a@b.co",
    "4111 1111 1111 1111", "4111111111111111", "378282246310005", "5555-5555-5555-4444",
    "+1 (555) 123-4567", "+44 20 7946 0958", "555-123-4567", "(555) 123-4567", "123-45-6789",
    "192.168.1.1", "10.0.0.255", "172.217.164.110", "2001:db8::1", "::1", "fe80::1ff:fe23:4567:890a",
    JWT, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    "DE89 3704 0044 0532 0130 00", "AKIAIOSFODNN7EXAMPLE", "ghp_" + "a1B2" * 9, "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "xoxb-123456789012-AbCdEfGhIjKl", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
]
ORDINARY = [
    "2024-01-05", "1234.56", "1,234,567.89", "2024-01-05 10:30:00.123456+00", "10:30:00", "1704449400000",
    "550e8400-e29b-41d4-a716-446655440000", "ORD-4111111111111112", "4111 1111 1111 1112", "1.2.3.4.5", "v1.2.3.4",
    "user@localhost", "icon@2x.png", "std::cout", "shipped", "Zoë Müller", "n/a",
]
GLUE = ["", " ", ", ", "ë", "✓", "请", "@", ".", "-", "+", ":", "::", "\\n", '"', "x", "1", "{", "}", "\n", "_", "é@"]
# Lengths whose last length-header byte is an ASCII digit (48..57), '@' (64) or a capital letter (65..90).
SIZES = [*range(48, 58), 64, *range(65, 91)]
FILL = [" ", "x", ".", "-", "1", "@", "ë"]


def _sized(text: str, size: int, fill: str) -> bytes:
    """``text`` cut or padded (whole characters only) to exactly ``size`` bytes."""
    while len(text.encode()) > size:
        text = text[:-1]
    while len(text.encode()) + len(fill.encode()) <= size:
        text += fill
    return text.encode() + b" " * (size - len(text.encode()))


_FREE = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)  # no surrogates, no NUL
FRAGMENT = st.one_of(st.sampled_from(SENSITIVE), st.sampled_from(ORDINARY), st.sampled_from(GLUE), _FREE)
TEXT = st.lists(FRAGMENT, max_size=5).map("".join)
SIZED = st.builds(_sized, TEXT, st.sampled_from(SIZES), st.sampled_from(FILL))
VALUE: st.SearchStrategy[bytes | None] = st.one_of(st.none(), st.just(b""), TEXT.map(str.encode), SIZED)


@st.composite
def row_runs(draw: st.DrawFn) -> list[list[bytes | None]]:
    width = draw(st.integers(1, 4))
    return draw(st.lists(st.lists(VALUE, min_size=width, max_size=width), min_size=1, max_size=6))


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCAN_STYLES = st.sampled_from([Style.PARTIAL, Style.FULL, Style.HASH, Style.NULL])


@SETTINGS
@given(row_runs(), SCAN_STYLES)
@example([[b"jane@example.com" + b" " * 32]], Style.PARTIAL)  # a 48-byte value: its length header ends in "0"
@example([[b"x" * 63 + b"@", b"example.com"]], Style.FULL)  # "@" as a length byte, then a domain
@example([[b"a" * 64, b"@example.com"], [b"+" * 43, b"1 555 123 4567"]], Style.PARTIAL)
@example([[b"4111 1111 1111 1111" + b" " * 46, b"\xe8\xaf\xb7jane@example.com", None, b""]], Style.HASH)
@example([[b"555-123-4567"], [None], [b"z\xc3\xabe@example.com"]], Style.NULL)
@example([[b"+44 20 7946 0958jane.doe@example.com"]], Style.PARTIAL)  # the kept "0" completes a phone number
def test_property_detectors_mask_every_match_and_nothing_else(rows: list[list[bytes | None]], style: Style) -> None:
    columns = [expr(f"c{i}") for i in range(len(rows[0]))]
    plan = ResultPlan(session(detect(style)), columns)
    decoded, counts, run, out = apply(plan, rows)
    expected_counts: Counts = {}
    found_in_originals = 0
    changed = False
    for row, masked_row in zip(rows, decoded, strict=True):
        for i, (value, masked) in enumerate(zip(row, masked_row, strict=True)):
            if value is None:
                assert masked is None
                continue
            found = ALL.find(value)
            if not found:  # (1) no match: byte for byte the same
                assert masked == value
                continue
            changed = True
            found_in_originals += len(found)
            assert masked is None or ALL.find(masked) == [], (value, masked)  # (2) nothing left to find
            if style is Style.NULL:
                assert masked is None
            if style is Style.PARTIAL:  # (3) stars replace bytes one for one
                assert masked is not None and len(masked) == len(value)
            # what mask_text makes of the value alone, with the same styles and key
            alone, detected = mask_text(value, ALL, style, KEY)
            assert masked == alone
            for det, n in detected:
                key = ("detect", f"c{i}", det)
                expected_counts[key] = expected_counts.get(key, 0) + n
    assert counts == expected_counts  # (4) what was masked, per rule, column and detector
    assert sum(counts.values()) >= found_in_originals
    if not changed:
        assert out is run
    if style is Style.PARTIAL:  # in place: the same length, and every length header where it was
        assert len(out) == len(run)
        pos = 0
        while pos < len(run):
            spans, end = decode.data_row_spans(run, pos)
            assert decode.data_row_spans(out, pos) == (spans, end)
            pos = end


MIXED_KINDS = st.sampled_from(list(Kind))


@SETTINGS
@given(row_runs(), st.data())
def test_property_column_rules_and_detectors_together(rows: list[list[bytes | None]], data: st.DataObject) -> None:
    width = len(rows[0])
    kinds = data.draw(st.lists(MIXED_KINDS, min_size=width, max_size=width))
    marked = data.draw(st.lists(st.booleans(), min_size=width, max_size=width))
    col_style = data.draw(SCAN_STYLES)
    scan_style = data.draw(st.sampled_from([Style.PARTIAL, Style.FULL, Style.HASH]))
    columns = [table_col("t", f"{'secret' if m else 'open'}{i}", k) for i, (k, m) in enumerate(zip(kinds, marked,
                                                                                                strict=True))]
    plan = ResultPlan(session(mark(col_style, "t.secret*"), detect(scan_style)), columns)
    decoded, counts, _, _ = apply(plan, rows)
    for row, masked_row in zip(rows, decoded, strict=True):
        for value, masked, kind, is_marked in zip(row, masked_row, kinds, marked, strict=True):
            if value is None:
                assert masked is None
            elif is_marked:
                assert masked == (mask_whole(value, col_style, KEY) if kind is Kind.TEXT else None)
            elif kind is Kind.NOT_TEXT:
                assert masked == value
            elif kind is Kind.OPAQUE:
                assert masked == (None if ALL.find(value) else value)
            elif kind is Kind.JSONB_BINARY:
                body = mask_text(value[1:], ALL, scan_style, KEY)[0]
                assert masked == (None if body is None else value[:1] + body)
            else:
                assert masked == mask_text(value, ALL, scan_style, KEY)[0]
    expected: Counts = {}
    for row in rows:
        for value, column, is_marked in zip(row, columns, marked, strict=True):
            if value is not None and is_marked:
                key = ("cols", column.label, "column" if column.kind is Kind.TEXT else "column:null")
                expected[key] = expected.get(key, 0) + 1
    assert {k: n for k, n in counts.items() if k[0] == "cols"} == expected
    for (rule, label, what), n in counts.items():
        if rule != "cols":
            assert rule == "detect" and n > 0
            column = next(c for c in columns if c.label == label)
            assert what.endswith(":null") == (column.kind is Kind.OPAQUE)


# --- column rules: masked whole, by kind --------------------------------------------------------------------------

EMAIL_COL = table_col("customers", "email")


def _one(style: Style, value: bytes | None, column: Column = EMAIL_COL, key: bytes = KEY) -> bytes | None:
    plan = ResultPlan(session(mark(style, "customers.email"), key=key), [column])
    decoded, counts, _, _ = apply(plan, [[value]])
    what = "column" if column.kind is Kind.TEXT else "column:null"  # NULL because the type cannot hold a mask
    assert counts == ({} if value is None else {("cols", str(column.names[0]), what): 1})
    return decoded[0][0]


def test_partial_column_keeps_the_shape_of_what_it_holds() -> None:
    assert _one(Style.PARTIAL, b"jane@example.com") == b"j***@*******.com"
    assert _one(Style.PARTIAL, b"4111 1111 1111 1111") == b"**** **** **** 1111"
    assert _one(Style.PARTIAL, b"not an address") == b"n************s"
    assert _one(Style.PARTIAL, b"Zo\xc3\xab M\xc3\xbcller") == b"Z" + b"*" * 10 + b"r"  # bytes -> stars, valid UTF-8
    assert _one(Style.PARTIAL, b"n/a") == b"***"
    assert _one(Style.PARTIAL, b"") == b""
    assert _one(Style.PARTIAL, None) is None


def test_full_column_names_the_detector_or_column() -> None:
    assert _one(Style.FULL, b"jane@example.com") == b"[redacted:email]"
    assert _one(Style.FULL, b"+1 (555) 123-4567") == b"[redacted:phone]"
    assert _one(Style.FULL, b"4111-1111-1111-1111") == b"[redacted:credit_card]"
    assert _one(Style.FULL, b"123-45-6789") == b"[redacted:ssn]"
    assert _one(Style.FULL, b"Jane Doe") == b"[redacted:column]"
    assert _one(Style.FULL, b"192.168.1.1") == b"[redacted:column]"  # judged by shape: no shape for addresses
    assert _one(Style.FULL, b"") == b"[redacted:column]"


@SETTINGS
@given(TEXT.map(str.encode), st.sampled_from(list(Style)))
@example(b"+1 555 123 4567 ext. 12", Style.PARTIAL)
@example(b"4111 1111 1111 1111", Style.PARTIAL)
def test_property_a_value_masked_whole_holds_no_match(value: bytes, style: Style) -> None:
    masked = _one(style, value)
    if style is Style.NULL:
        assert masked is None
        return
    assert masked is not None and ALL.find(masked) == [], (value, masked)
    if style is Style.PARTIAL:
        assert len(masked) == len(value)


@pytest.mark.parametrize("value", [
    b"jane@example.com (tel +1 555 123 4567)",
    b"a@b.c, SSN 123-45-6789",
    b"x@y.z 4111111111111111",
])
def test_partial_column_with_an_at_sign_leaks_what_follows_the_last_dot(value: bytes) -> None:
    masked = _one(Style.PARTIAL, value)
    assert masked is not None and ALL.find(masked) == [], masked


def test_hash_column_is_keyed_and_deterministic() -> None:
    token = _one(Style.HASH, b"jane@example.com")
    assert token is not None and re.fullmatch(rb"h:[0-9a-f]{16}", token)
    assert token == hash_token(b"jane@example.com", "email", KEY)
    assert _one(Style.HASH, b"JANE@example.COM") == token  # the address is normalised
    assert _one(Style.HASH, b"jane@example.com", key=OTHER_KEY) != token
    assert _one(Style.HASH, b"Jane Doe") == hash_token(b"Jane Doe", "column", KEY)
    # equal values in one run give equal tokens; different values do not
    plan = ResultPlan(session(mark(Style.HASH, "customers.email")), [EMAIL_COL])
    decoded, _, _, _ = apply(plan, [[b"a@example.com"], [b"b@example.com"], [b"a@example.com"], [None]])
    assert decoded[0] == decoded[2] != decoded[1] and decoded[3] == (None,)


def test_null_column_is_null() -> None:
    assert _one(Style.NULL, b"jane@example.com") is None
    assert _one(Style.NULL, b"") is None


@pytest.mark.parametrize("kind", [Kind.NOT_TEXT, Kind.STRUCTURED, Kind.OPAQUE, Kind.JSONB_BINARY])
@pytest.mark.parametrize("style", list(Style))
def test_a_marked_column_that_cannot_hold_a_mask_becomes_null(kind: Kind, style: Style) -> None:
    column = table_col("customers", "email", kind)
    assert _one(style, b'{"e": "jane@example.com"}', column) is None
    assert _one(style, b"42", column) is None
    assert ResultPlan(session(mark(style, "customers.email")), [column]).marked() == [
        ("email", "cols", "NULL (its type cannot hold a mask), from public.customers.email")
    ]


def test_marked_and_scanned_columns_are_reported() -> None:
    plan = ResultPlan(session(mark(Style.FULL, "customers.email"), detect(Style.PARTIAL)),
                      [EMAIL_COL, table_col("customers", "note"), table_col("customers", "id", Kind.NOT_TEXT)])
    assert plan.marked() == [("email", "cols", "masked (full), from public.customers.email")]
    assert plan.scanned() == ["note"]


def test_marked_columns_are_masked_even_when_the_prefilter_clears_the_run() -> None:
    plan = ResultPlan(session(mark(Style.FULL, "customers.email"), detect(Style.FULL)),
                      [EMAIL_COL, table_col("customers", "note")])
    decoded, counts, _, _ = apply(plan, [[b"n/a", b"shipped"], [None, b"2024-01-05"]])
    assert decoded == [(b"[redacted:column]", b"shipped"), (None, b"2024-01-05")]
    assert counts == {("cols", "public.customers.email", "column"): 1}


# --- detectors, by kind -------------------------------------------------------------------------------------------


def test_not_text_columns_are_not_scanned() -> None:
    plan = ResultPlan(session(detect(Style.FULL)), [expr("n", Kind.NOT_TEXT), expr("t")])
    decoded, counts, _, _ = apply(plan, [[b"4111111111111111", b"4111111111111111"]])
    assert decoded == [(b"4111111111111111", b"[redacted:credit_card]")]
    assert counts == {("detect", "t", "credit_card"): 1}


def test_structured_columns_are_masked_inside_their_syntax() -> None:
    plan = ResultPlan(session(detect(Style.FULL)), [expr("j", Kind.STRUCTURED)])
    decoded, _, _, _ = apply(plan, [[b'{"mail": "jane@example.com", "n": 1}'], [b"{a@b.co,x}"]])
    assert decoded == [(b'{"mail": "[redacted:email]", "n": 1}',), (b"{[redacted:email],x}",)]


@pytest.mark.parametrize("style", [Style.PARTIAL, Style.FULL, Style.HASH])
def test_opaque_column_with_a_match_becomes_null(style: Style) -> None:
    plan = ResultPlan(session(detect(style)), [expr("o", Kind.OPAQUE)])
    binary = b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x19"
    rows: list[list[bytes | None]] = [[binary + b"\x00\x00\x00\x10jane@example.com"], [binary + b"\x00\x00\x00\x02ok"],
                                      [b""]]
    decoded, counts, _, _ = apply(plan, rows)
    assert decoded == [(None,), (binary + b"\x00\x00\x00\x02ok",), (b"",)]
    assert counts == {("detect", "o", "email:null"): 1}  # sent as NULL: recorded as such, under the detector's rule


def test_jsonb_binary_keeps_its_version_byte() -> None:
    plan = ResultPlan(session(detect(Style.PARTIAL, "email"), detect(Style.FULL, "phone", rule="phones")),
                      [expr("j", Kind.JSONB_BINARY)])
    rows: list[list[bytes | None]] = [
        [b'\x01{"mail": "jane@example.com"}'],
        [b'\x01"jane@example.com"'],
        [b"\x01jane@example.com"],  # the match starts right after the version byte
        [b'\x01{"tel": "+1 555 123 4567"}'],
        [b'\x01{"n": 1}'],
        [b"\x01"],
        [b""],
    ]
    decoded, counts, _, _ = apply(plan, rows)
    assert decoded == [
        (b'\x01{"mail": "j***@*******.com"}',),
        (b'\x01"j***@*******.com"',),
        (b"\x01j***@*******.com",),
        (b'\x01{"tel": "[redacted:phone]"}',),
        (b'\x01{"n": 1}',),
        (b"\x01",),
        (b"",),
    ]
    assert counts == {("detect", "j", "email"): 3, ("phones", "j", "phone"): 1}


# --- column patterns ----------------------------------------------------------------------------------------------


def _marks(pattern: str, column: Column) -> bool:
    return session(mark(Style.FULL, pattern)).column_rule(column.names, column.name, column.from_table) is not None


def test_column_pattern_parse() -> None:
    assert ColumnPattern.parse("customers.email") == ColumnPattern("*", "customers", "email")
    assert ColumnPattern.parse("shop.customers.email") == ColumnPattern("shop", "customers", "email")
    assert str(ColumnPattern.parse("customers.email")) == "customers.email"
    assert str(ColumnPattern.parse("shop.customers.email")) == "shop.customers.email"
    for bad in ("email", "a.b.c.d"):
        with pytest.raises(ValueError, match=r"is not table\.column or schema\.table\.column"):
            ColumnPattern.parse(bad)


@pytest.mark.parametrize(("pattern", "name", "marked"), [
    ("customers.email", ("public", "customers", "email"), True),
    ("customers.email", ("shop", "customers", "email"), True),  # any schema
    ("customers.email", ("shop", "customers", "phone"), False),
    ("customers.email", ("shop", "orders", "email"), False),
    ("shop.customers.email", ("shop", "customers", "email"), True),
    ("shop.customers.email", ("public", "customers", "email"), False),  # only that schema
    ("*.email", ("public", "customers", "email"), True),
    ("*.email", ("crm", "leads", "email"), True),
    ("*.email", ("crm", "leads", "email2"), False),
    ("customers.*_ssn", ("public", "customers", "spouse_ssn"), True),
    ("customers.*_ssn", ("public", "customers", "ssn"), False),
    ("customers.*_ssn", ("public", "customers", "spouse_ssn_hash"), False),
    ("cust?mers.email", ("public", "customers", "email"), True),
    ("sh*.*.email", ("shop", "customers", "email"), True),
    ("sh*.*.email", ("public", "customers", "email"), False),
    ("customers.email", ("public", "Customers", "email"), False),  # case-sensitive, as PostgreSQL's names are
    ("customers.email", ("public", "customers", "Email"), False),
    ("Customers.Email", ("public", "Customers", "Email"), True),  # a quoted mixed-case name, written as it is
    ("Customers.Email", ("public", "customers", "email"), False),
])
def test_column_patterns(pattern: str, name: tuple[str, str, str], marked: bool) -> None:
    column = ColumnName(*name)
    assert ColumnPattern.parse(pattern).matches(column) is marked
    assert _marks(pattern, Column("result_name", (column,), True, Kind.TEXT)) is marked


def test_a_rule_on_a_column_name_anywhere_also_covers_expressions_of_that_name() -> None:
    assert ColumnPattern.parse("*.email").any_table and ColumnPattern.parse("*.*.email").any_table
    assert not ColumnPattern.parse("customers.email").any_table and not ColumnPattern.parse("s.*.email").any_table
    lower_email = expr("email")  # SELECT lower(email) AS email
    assert _marks("*.email", lower_email)
    assert _marks("*.*.email", lower_email)
    assert _marks("*.e*l", lower_email)
    assert not _marks("*.email", expr("mail"))
    assert not _marks("customers.email", lower_email)  # only a rule on any table reaches an expression
    # a table column called "email" in the result but named otherwise in its table: its names decide
    aliased = table_col("customers", "contact", name="email")  # SELECT contact AS email FROM customers
    assert not _marks("*.email", aliased)
    assert _marks("*.contact", aliased)
    # a table column whose names were not found (from a table, but no names) is not marked by the fallback
    assert not _marks("*.email", Column("email", (), True, Kind.TEXT))


def test_a_view_column_is_marked_by_a_rule_on_its_base_column() -> None:
    view = Column("e", (ColumnName("public", "v_customers", "e"), ColumnName("shop", "customers", "email")), True,
                  Kind.TEXT)
    assert _marks("customers.email", view)
    assert _marks("shop.customers.email", view)
    assert _marks("v_customers.e", view)
    assert not _marks("public.customers.email", view)
    plan = ResultPlan(session(mark(Style.FULL, "customers.email")), [view])
    decoded, counts, _, _ = apply(plan, [[b"jane@example.com"]])
    assert decoded == [(b"[redacted:email]",)]
    assert counts == {("cols", "public.v_customers.e", "column"): 1}  # labelled by the first name: the view's


# --- masking policy: scopes and several rules ---------------------------------------------------------------------


def test_rules_apply_by_connection_and_group() -> None:
    scoped = MaskRule("scoped", Style.FULL, detectors=("email",), connections=frozenset({"shop"}),
                      groups=frozenset({"support", "sales"}))
    policy = MaskingPolicy([scoped], key=KEY)
    masking, exempt = policy.for_session("shop", ["support"])
    assert masking is not None and masking.rules == (scoped,) and exempt == ()
    assert policy.for_session("shop", ["sales", "eng"])[0] is not None
    assert policy.for_session("shop", ["eng"]) == (None, ())
    assert policy.for_session("hr", ["support"]) == (None, ())
    assert policy.for_session("shop", []) == (None, ())
    everyone = MaskingPolicy([MaskRule("all", Style.FULL, detectors=("email",))], key=KEY)
    assert everyone.for_session("any", [])[0] is not None
    assert policy.for_session("shop", ["support"])[0] is masking  # cached per scope
    assert policy.for_session("shop", ("support",))[0] is masking


def test_exempt_groups_see_full_values_and_are_recorded() -> None:
    pii = MaskRule("pii", Style.FULL, columns=(ColumnPattern.parse("customers.email"),),
                   exempt_groups=frozenset({"dpo"}))
    secrets = MaskRule("secrets", Style.PARTIAL, detectors=("aws_access_key",), groups=frozenset({"eng"}),
                       exempt_groups=frozenset({"sre"}))
    policy = MaskingPolicy([pii, secrets], key=KEY)
    assert policy.for_session("c", ["dpo"]) == (None, ("pii",))
    masking, exempt = policy.for_session("c", ["dpo", "eng"])
    assert masking is not None and masking.rules == (secrets,) and exempt == ("pii",)
    assert masking.column_rule(EMAIL_COL.names, "email", True) is None  # the exempt rule is not applied
    assert ResultPlan(masking, [EMAIL_COL]).scanned() == ["email"]
    assert policy.for_session("c", ["dpo", "eng", "sre"]) == (None, ("pii", "secrets"))
    masking, exempt = policy.for_session("c", ["sre"])  # "secrets" does not apply at all: not an exemption
    assert masking is not None and masking.rules == (pii,) and exempt == ()


def test_the_first_column_rule_in_file_order_wins() -> None:
    first = mark(Style.FULL, "customers.email", rule="first")
    second = mark(Style.HASH, "*.email", "customers.phone", rule="second")
    masking = session(first, second)
    assert masking.column_rule(EMAIL_COL.names, "email", True) is first
    assert masking.column_rule(table_col("customers", "phone").names, "phone", True) is second
    assert masking.column_rule(table_col("leads", "email").names, "email", True) is second
    plan = ResultPlan(masking, [EMAIL_COL, table_col("leads", "email")])
    decoded, counts, _, _ = apply(plan, [[b"jane@example.com", b"jane@example.com"]])
    assert decoded == [(b"[redacted:email]", hash_token(b"jane@example.com", "email", KEY))]
    assert counts == {("first", "public.customers.email", "column"): 1, ("second", "public.leads.email", "column"): 1}
    assert session(second, first).column_rule(EMAIL_COL.names, "email", True) is second


def test_a_detector_named_by_two_rules_takes_the_first_rules_style() -> None:
    masking = session(detect(Style.FULL, "email", "phone", rule="a"), detect(Style.PARTIAL, "phone", "email", "ssn",
                                                                              rule="b"))
    assert masking.styles == {"email": Style.FULL, "phone": Style.FULL, "ssn": Style.PARTIAL}
    assert masking.detector_rules == {"email": "a", "phone": "a", "ssn": "b"}
    assert masking.scanner is not None
    assert [d.name for d in masking.scanner.detectors] == ["email", "phone", "ssn"]
    plan = ResultPlan(masking, [expr("t")])
    decoded, counts, _, _ = apply(plan, [[b"jane@example.com 555-123-4567 123-45-6789"]])
    assert decoded == [(b"[redacted:email] [redacted:phone] 1**-**-***9",)]
    assert counts == {("a", "t", "email"): 1, ("a", "t", "phone"): 1, ("b", "t", "ssn"): 1}


def test_a_session_with_column_rules_only_has_no_scanner() -> None:
    masking = session(mark(Style.FULL, "customers.email"))
    assert masking.scanner is None and masking.has_columns and masking.styles == {}
    assert not session(detect(Style.FULL)).has_columns


def test_custom_detectors_come_first_in_the_scanner() -> None:
    staff = custom("staff_email", rb"[a-z]+@corp\.example\.com")
    emp = custom("employee_id", r"\bEMP-\d{6}\b")
    masking = session(MaskRule("r", Style.FULL, detectors=("email", "phone", "staff_email", "employee_id")),
                      custom_detectors=[staff, emp])
    assert masking.scanner is not None
    assert [d.name for d in masking.scanner.detectors] == ["staff_email", "employee_id", "email", "phone"]
    plan = ResultPlan(masking, [expr("t")])
    decoded, counts, _, _ = apply(plan, [[b"jane@corp.example.com, bob@example.org, EMP-123456"]])
    assert decoded == [(b"[redacted:staff_email], [redacted:email], [redacted:employee_id]",)]
    assert counts == {("r", "t", "staff_email"): 1, ("r", "t", "email"): 1, ("r", "t", "employee_id"): 1}


CUSTOM = [custom("employee_id", r"\bEMP-\d{6}\b"), custom("plate", r"[A-Z]{2}-\d{3}")]
WITH_CUSTOM = Scanner([*CUSTOM, *ALL.detectors])


@SETTINGS
@given(st.lists(st.lists(st.one_of(VALUE, st.sampled_from([b"EMP-123456", b"AB-123 x", b"EMP-12345", b"id EMP-6543"])),
                         min_size=2, max_size=2), min_size=1, max_size=6), SCAN_STYLES)
def test_property_custom_detectors_in_a_run_mask_what_they_mask_in_each_value(rows: list[list[bytes | None]],
                                                                             style: Style) -> None:
    plan = ResultPlan(session(MaskRule("r", style, detectors=("employee_id", "plate", *BUILTINS)),
                              custom_detectors=CUSTOM), [expr("a"), expr("b")])
    decoded, _, _, _ = apply(plan, rows)
    for row, masked_row in zip(rows, decoded, strict=True):
        for value, masked in zip(row, masked_row, strict=True):
            assert masked == (None if value is None else mask_text(value, WITH_CUSTOM, style, KEY)[0])


@pytest.mark.parametrize("regex", [r"EMP-\d{6}$", r"EMP-\d{6}\Z", r"EMP-\d{6}(?!\S)"])
def test_a_custom_detector_anchored_at_the_end_masks_every_row(regex: str) -> None:
    emp = custom("employee_id", regex)
    assert Scanner([emp]).find(b"EMP-123456")  # each value alone: found
    plan = ResultPlan(session(MaskRule("r", Style.FULL, detectors=("employee_id",)), custom_detectors=[emp]),
                      [expr("id")])
    decoded, _, _, _ = apply(plan, [[b"EMP-123456"], [b"EMP-123456"]])
    assert decoded == [(b"[redacted:employee_id]",), (b"[redacted:employee_id]",)]


@pytest.mark.parametrize("regex", [r"^EMP-\d{6}", r"\AEMP-\d{6}"])
def test_a_custom_detector_anchored_at_the_start_matches_a_value(regex: str) -> None:
    emp = custom("employee_id", regex)
    plan = ResultPlan(session(MaskRule("r", Style.FULL, detectors=("employee_id",)), custom_detectors=[emp]),
                      [expr("id")])
    decoded, _, _, _ = apply(plan, [[b"EMP-123456"]])
    assert decoded == [(b"[redacted:employee_id]",)]


# --- COPY ---------------------------------------------------------------------------------------------------------


def test_copy_rule_finds_the_rule_that_forbids_copying_a_table() -> None:
    any_schema = mark(Style.FULL, "customers.email", rule="any_schema")
    shop_only = mark(Style.FULL, "shop.orders.card", rule="shop_only")
    masking = session(any_schema, shop_only, detect(Style.FULL))
    assert masking.copy_rule(["customers"]) is any_schema
    assert masking.copy_rule(["shop.customers"]) is any_schema
    assert masking.copy_rule(["crm.customers"]) is any_schema
    assert masking.copy_rule(["shop.orders"]) is shop_only
    assert masking.copy_rule(["orders"]) is shop_only  # unqualified: it may be shop.orders
    assert masking.copy_rule(["public.orders"]) is None
    assert masking.copy_rule(["products", "shop.orders"]) is shop_only
    assert masking.copy_rule(["products", "shop.products"]) is None
    assert masking.copy_rule([]) is None
    assert masking.copy_rule(["Customers"]) is None  # case-sensitive
    everywhere = session(mark(Style.NULL, "*.email", rule="everywhere"))
    for table in ("customers", "shop.orders", "x"):
        assert everywhere.copy_rule([table]) is not None
    assert session(mark(Style.NULL, "cust*.email")).copy_rule(["customer_notes"]) is not None
    assert session(detect(Style.FULL)).copy_rule(["customers"]) is None  # detectors still run over COPY data


# --- free text ----------------------------------------------------------------------------------------------------


def test_mask_free_text_uses_each_detectors_style_and_rule() -> None:
    masking = session(detect(Style.FULL, "email", rule="mails"), detect(Style.PARTIAL, "phone", rule="phones"),
                      detect(Style.HASH, "ssn", rule="ids"))
    assert masking.scanner is not None
    counts: Counts = {}
    text = b"Key (email)=(jane@example.com) exists; call +1 555 123 4567 or 555-123-4567, ssn 123-45-6789"
    out = mask_free_text(masking.scanner, masking.styles, masking.detector_rules, KEY, text, "error", counts)
    assert out == (b"Key (email)=(" + full_token("email") + b") exists; call +* *** *** **67 or ***-***-**67, ssn "
                   + hash_token(b"123-45-6789", "ssn", KEY))
    assert counts == {("mails", "error", "email"): 1, ("phones", "error", "phone"): 2, ("ids", "error", "ssn"): 1}
    plan = ResultPlan(masking, [])
    assert plan.mask_free_text(text, "notice", {}) == out
    same = b"nothing to see, 2024-01-05"
    assert plan.mask_free_text(same, "notice", counts) is same
    assert mask_free_text(None, {}, {}, KEY, text, "error", counts) is text


def test_mask_free_text_null_style_nulls_the_whole_text() -> None:
    masking = session(detect(Style.NULL, "credit_card"), detect(Style.FULL, "email", rule="mails"))
    counts: Counts = {}
    plan = ResultPlan(masking, [])
    assert plan.mask_free_text(b"card 4111 1111 1111 1111, a@b.co", "copy", counts) is None
    assert plan.mask_free_text(b"only a@b.co", "copy", counts) == b"only [redacted:email]"
    assert counts == {("detect", "copy", "credit_card"): 1, ("mails", "copy", "email"): 2}


# --- the prefilter ------------------------------------------------------------------------------------------------

ORDINARY_BUFFERS = [
    b"2024-01-05", b"2024/01/05", b"1234.56", b"-1,234,567.89", b"$4,111.11", b"2024-01-05 10:30:00+00",
    b"2024-01-05T10:30:00.123456+00:00", b"10:30:00", b"550e8400-e29b-41d4-a716-446655440000",
    b"123e4567-e89b-12d3-a456-426614174000", b"shipped", b"hello world", b"Zo\xc3\xab M\xc3\xbcller",
    b"\xe6\x9d\xb1\xe4\xba\xac\xe9\x83\xbd", b"n/a", b"", b"INV-000123", b"order 123456789012",
    b"2024-01-05|1234.56|shipped|550e8400-e29b-41d4-a716-446655440000|2024-01-05 10:30:00+00",
]


@pytest.mark.parametrize("buf", ORDINARY_BUFFERS)
def test_may_match_is_false_on_ordinary_buffers(buf: bytes) -> None:
    assert not ALL.may_match(buf)
    assert not ALL.may_match(bytearray(buf)) and not ALL.may_match(memoryview(buf))


def test_may_match_is_false_on_a_run_of_ordinary_rows() -> None:
    run = run_of([[b"2024-01-05", b"1234.56", None, b"shipped"], [b"", b"2024-01-05 10:30:00+00", b"n/a", b"ok"]] * 20)
    assert not ALL.may_match(run)


def test_may_match_with_a_custom_detector_always_answers_yes() -> None:
    assert Scanner([custom("emp", r"EMP-\d+")]).may_match(b"2024-01-05")


SINGLE = {name: Scanner.builtin(name) for name in BUILTINS}
SURROUND = st.one_of(
    st.binary(max_size=10),
    _FREE.map(str.encode),
    st.sampled_from([b"", b"D\x00\x00\x00", b"\x00\x00\x00\x30", b"\x00\x00\x00@", b"\x00\x00\x00A", b"x", b"1", b"@",
                     b"\\", b"\\n", b".", b"+", b"-", b":", b"\xc3"]),
)


@SETTINGS
@given(SURROUND, st.one_of(st.sampled_from(SENSITIVE).map(str.encode), TEXT.map(str.encode), SIZED), SURROUND)
@example(b"\x00\x00\x00\x10", b"jane@example.com", b"")
@example(b"a", b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----", b"1")
def test_property_may_match_whenever_find_finds_something(prefix: bytes, value: bytes, suffix: bytes) -> None:
    buf = prefix + value + suffix
    if ALL.find(value) or ALL.find(buf):
        assert ALL.may_match(buf)
        assert ALL.may_match(bytearray(buf))
    for name, scanner in SINGLE.items():
        if scanner.find(value):
            assert scanner.may_match(buf), name


@SETTINGS
@given(row_runs())
def test_property_may_match_a_run_whenever_a_value_in_it_matches(rows: list[list[bytes | None]]) -> None:
    if any(v is not None and ALL.find(v) for row in rows for v in row):
        assert ALL.may_match(run_of(rows))
