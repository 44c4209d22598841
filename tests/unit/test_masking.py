"""Masking: detectors (positives, realistic near misses), styles, UTF-8 and structured text, custom detectors, and
properties of the scanner and maskers over generated text. Pure: bytes in, bytes out."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.masking import (
    BUILTIN_DETECTORS,
    Match,
    Scanner,
    Style,
    custom,
    full_token,
    hash_token,
    mask,
    mask_matches,
    mask_text,
)
from wardgate.masking.detectors import iban_ok, luhn

ALL = Scanner.builtin()
KEY = b"test-key"


def found(text: str | bytes, scanner: Scanner = ALL) -> list[tuple[str, str]]:
    data = text.encode() if isinstance(text, str) else text
    return [(data[m.start : m.end].decode(), m.detector) for m in scanner.find(data)]


# --- detectors: what they find ----------------------------------------------------------------------------------

POSITIVES = [
    # e-mail
    ("jane.doe@example.com", "email"),
    ("j.o'brien+news@mail.example.co.uk", "email"),
    ("x@y.io", "email"),
    ("zoë@example.com", "email"),  # RFC 6531 local part
    ("用户@例子.xn--fiqs8s", "email"),
    ("info@bücher.de", "email"),  # IDN domain in Unicode form
    # cards: networks, lengths, separators
    ("4111111111111111", "credit_card"),
    ("4111 1111 1111 1111", "credit_card"),
    ("4111-1111-1111-1111", "credit_card"),
    ("5555555555554444", "credit_card"),
    ("2223003122003222", "credit_card"),  # Mastercard 2-series
    ("3782 822463 10005", "credit_card"),  # Amex 4-6-5
    ("378282246310005", "credit_card"),
    ("36227206271667", "credit_card"),  # Diners, 14 digits
    ("6011000990139424", "credit_card"),
    ("3530111333300000", "credit_card"),  # JCB
    ("6200000000000005", "credit_card"),  # UnionPay
    ("4111111111111111110", "credit_card"),  # Visa, 19 digits
    # SSN
    ("123-45-6789", "ssn"),
    ("078-05-1120", "ssn"),
    ("665 01 0001", "ssn"),
    # phones
    ("+14155552671", "phone"),
    ("+1 415 555 2671", "phone"),
    ("+1 (555) 123-4567", "phone"),
    ("+44 20 7946 0958", "phone"),
    ("+44 (0)20 7946 0958", "phone"),
    ("+49-30-1234567", "phone"),
    ("+33.1.23.45.67.89", "phone"),
    ("(555) 123-4567", "phone"),
    ("(555)123-4567", "phone"),
    ("555-123-4567", "phone"),
    ("555.123.4567", "phone"),
    ("1-800-555-0199", "phone"),
    ("1 (800) 555-0199", "phone"),
    # IBAN
    ("DE89370400440532013000", "iban"),
    ("DE89 3704 0044 0532 0130 00", "iban"),
    ("GB82 WEST 1234 5698 7654 32", "iban"),
    ("NO9386011117947", "iban"),
    ("BE68 5390 0754 7034", "iban"),
    # IP addresses
    ("192.168.1.1", "ipv4"),
    ("10.0.0.255", "ipv4"),
    ("0.0.0.0", "ipv4"),
    ("2001:db8::1", "ipv6"),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "ipv6"),
    ("fe80::1ff:fe23:4567:890a", "ipv6"),
    ("::1", "ipv6"),
    ("::ffff:192.0.2.128", "ipv6"),
    ("64:ff9b::192.0.2.33", "ipv6"),
    # secrets
    ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "jwt"),
    ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "jwt"),  # alg none: empty signature
    ("AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
    ("ASIAY34FZKBOKMUTVV7A", "aws_access_key"),
    ("ghp_" + "a1B2" * 9, "github_token"),
    ("gho_" + "Z9" * 18, "github_token"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_token"),
    ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
    ("rk_live_" + "51H8abcdEFGH1234", "stripe_key"),
    ("xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
    ("xoxp-1234-5678-90ab", "slack_token"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\nabcd==\n-----END RSA PRIVATE KEY-----", "pem_private_key"),
    ("-----BEGIN PRIVATE KEY-----\r\nMIIEvQIBADANBg\r\n-----END PRIVATE KEY-----", "pem_private_key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
     "pem_private_key"),
    ("-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIFHDBOBgkqhkiG9w0B\\n-----END ENCRYPTED PRIVATE KEY-----\\n",
     "pem_private_key"),  # as JSON text: escaped line breaks
    ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIr2 truncated", "pem_private_key"),
]


@pytest.mark.parametrize(("value", "detector"), POSITIVES)
def test_detects_a_whole_value(value: str, detector: str) -> None:
    if value.endswith(" truncated"):  # a PEM block without its END line runs to the end of its base64 body
        assert found(value) == [(value[: -len(" truncated")], detector)]
    elif value.endswith("\\n"):
        assert found(value) == [(value[:-2], detector)]
    else:
        assert found(value) == [(value, detector)]


@pytest.mark.parametrize(("value", "detector"), POSITIVES)
def test_detects_inside_text(value: str, detector: str) -> None:
    text = f"before {value}, after"
    assert (value.removesuffix(" truncated").removesuffix("\\n"), detector) in found(text)


NEGATIVES = [
    # plain numbers, amounts, codes
    "12345", "1234567890", "123456789", "1234.56", "-1234.56", "1,234,567.89", "$4,111.11", "0.4111111111111111",
    "99999", "90210-1234", "ORD-4111111111111112", "order 4111111111111112", "INV-2024-000123",
    # dates and timestamps
    "2024-01-05", "05.01.2024", "2024/01/05", "20240105103000", "2024-01-05T10:30:00Z", "2024-01-05 10:30:00.123456+00",
    "1704449400000", "10:30:00", "10:30", "23:59:59.999",
    # identifiers
    "123e4567-e89b-12d3-a456-426614174000", "550e8400e29b41d4a716446655440000", "deadbeefcafebabe",
    "00:1a:2b:3c:4d:5e", "v1.2.3.4", "version 1.2.3", "1.2.3.4.5", "1.3.6.1.4.1.311", "01.02.03.04", "256.1.1.1",
    # ISBN, EAN, card-shaped numbers that fail Luhn, network range or length
    "978-3-16-148410-0", "9783161484100", "0-306-40615-2", "4006381333931", "4111111111111112", "4111 1111 1111 1112",
    "1234567812345670", "7111111111111111", "4222222222222", "4111 1111-1111 1111",
    # SSN and phone shapes that fail their rules
    "000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "123456789",
    "123-456-7890", "055-123-4567", "+1234", "+1234.5678", "+1234567890123456", "12+12345678",
    # IBAN shapes that fail the checksum or length
    "DE89370400440532013001", "DE8937040044053201300", "XX89370400440532013000",
    # near-miss addresses and keys
    "user@localhost", "@mention", "@example.com", "x @example.com", "..@example.com", "icon@2x.png", "name@",
    "a@b", "a@b.c", "foo@bar.123",
    "std::cout", "Foo::Bar", "x :: Int", "x::1", "AKIA1234", "akiaiosfodnn7example", "ghp_short",
    "sk_test_4eC39HqLyjWDarjt",
    "xoxz-1234567890", "eyJhbGciOiJIUzI1NiJ9", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
    # ordinary text
    "Zoë Müller", "Grüße aus Köln", "東京都千代田区", "shipped", "n/a", "",
]


@pytest.mark.parametrize("value", NEGATIVES)
def test_near_misses_match_nothing(value: str) -> None:
    assert found(value) == []
    assert not ALL.search_any(value.encode())


def test_a_dotted_quad_is_an_ipv4_address_even_when_it_is_a_version() -> None:
    # Indistinguishable by shape: 1.2.3.4 is both. A "v" prefix or a fifth part makes it a version.
    assert found("1.2.3.4") == [("1.2.3.4", "ipv4")]
    assert found("release 1.2.3.4 is out") == [("1.2.3.4", "ipv4")]
    assert found("v1.2.3.4") == []


def test_a_hex_only_token_with_two_colons_is_an_ipv6_address() -> None:
    assert found("a::b") == [("a::b", "ipv6")]  # a valid address; documented false positive


def test_boundaries() -> None:
    assert found("x4111111111111111") == []
    assert found("4111111111111111x") == []
    assert found("a.4111111111111111") == []  # a decimal part
    assert found("card:4111111111111111;") == [("4111111111111111", "credit_card")]
    assert found("(555) 123-4567.") == [("(555) 123-4567", "phone")]
    assert found("10.0.0.1:5432") == [("10.0.0.1", "ipv4")]
    assert found("10.0.0.0/8") == [("10.0.0.0", "ipv4")]
    assert found("[2001:db8::1]:443") == [("2001:db8::1", "ipv6")]
    assert found("fe80::1%eth0") == [("fe80::1", "ipv6")]
    assert found("mailto:jane@example.com?subject=x") == [("jane@example.com", "email")]
    assert found("git@github.com:org/repo.git") == [("git@github.com", "email")]
    assert found("<jane@example.com>.") == [("jane@example.com", "email")]
    assert found("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE") == [("AKIAIOSFODNN7EXAMPLE", "aws_access_key")]


def test_card_followed_by_its_cvv_is_the_card_alone() -> None:
    assert found("4111 1111 1111 1111 123") == [("4111 1111 1111 1111", "credit_card")]
    assert found("BE68 5390 0754 7034 TEST") == [("BE68 5390 0754 7034", "iban")]


def test_several_matches_in_order_without_overlap() -> None:
    text = "a@b.co, 4111 1111 1111 1111; +44 20 7946 0958 / 10.1.2.3 then c@d.org"
    assert found(text) == [("a@b.co", "email"), ("4111 1111 1111 1111", "credit_card"),
                           ("+44 20 7946 0958", "phone"), ("10.1.2.3", "ipv4"), ("c@d.org", "email")]
    matches = ALL.find(text.encode())
    assert all(a.end <= b.start for a, b in pairwise(matches))


def test_a_scanner_finds_only_its_detectors() -> None:
    only_cards = Scanner.builtin("credit_card")
    assert found("a@b.co 4111111111111111", only_cards) == [("4111111111111111", "credit_card")]
    assert [d.name for d in Scanner.builtin("email", "phone").detectors] == ["email", "phone"]
    with pytest.raises(KeyError):
        Scanner.builtin("passport")
    with pytest.raises(ValueError, match="twice"):
        Scanner(["email", "email"])


def test_validators() -> None:
    assert luhn(b"79927398713") and not luhn(b"79927398710")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")
    assert not iban_ok("GB00WEST12345698765432")  # check digits 00 never occur
    assert len(BUILTIN_DETECTORS) == 13


# --- bytes: UTF-8, JSON, arrays, offsets -------------------------------------------------------------------------

def test_utf8_around_a_match_is_untouched() -> None:
    text = "Zoë <zoë@example.com> — Grüße, tél. +33 1 23 45 67 89 ✓".encode()
    out, counts = mask_text(text, ALL, Style.PARTIAL)
    assert out == "Zoë <z***@*******.com> — Grüße, tél. +** * ** ** ** 89 ✓".encode()
    assert counts == [("email", 1), ("phone", 1)]
    out, _ = mask_text(text, ALL, Style.FULL)
    assert out == "Zoë <[redacted:email]> — Grüße, tél. [redacted:phone] ✓".encode()


def test_cjk_text_glued_to_an_address() -> None:
    # Without a separator the CJK characters could be part of an RFC 6531 local part: they are masked with it.
    assert found("请联系john@example.com谢谢") == [("请联系john@example.com", "email")]
    assert found("カード番号4111111111111111です") == [("4111111111111111", "credit_card")]


def test_json_text() -> None:
    doc = {"email": "a@b.co", "note": "call me\n+1 555 123 4567\tor\tjane@example.com", "n": 12345, "ok": True}
    text = json.dumps(doc).encode()
    assert found(text) == [("a@b.co", "email"), ("+1 555 123 4567", "phone"), ("jane@example.com", "email")]
    for style in (Style.PARTIAL, Style.FULL, Style.HASH):
        out, counts = mask_text(text, ALL, style, KEY)
        assert out is not None
        masked = json.loads(out)  # escapes survive: nothing was cut out of "\n" or "\t"
        assert masked["n"] == 12345 and masked["ok"] is True
        assert counts == [("email", 2), ("phone", 1)]
    assert json.loads(mask_text(text, ALL, Style.FULL)[0] or b"")["note"] == \
        "call me\n[redacted:phone]\tor\t[redacted:email]"


def test_json_unicode_escapes_are_boundaries() -> None:
    text = json.dumps({"x": "\u00a04111111111111111\u2028zoë@example.com"}).encode()  # ASCII-only JSON
    assert b"\\u00a0" in text
    assert found(text) == [("4111111111111111", "credit_card"), ("zo\\u00eb@example.com", "email")]
    out = mask_text(text, ALL, Style.FULL)[0]
    assert json.loads(out or b"") == {"x": "\u00a0[redacted:credit_card]\u2028[redacted:email]"}


def test_postgres_array_text() -> None:
    text = b'{a@b.com,"x y",NULL,"+1 (555) 123-4567","say \\"hi\\" to c@d.org"}'
    assert found(text) == [("a@b.com", "email"), ("+1 (555) 123-4567", "phone"), ("c@d.org", "email")]
    assert mask_text(text, ALL, Style.PARTIAL)[0] == \
        b'{a@*.com,"x y",NULL,"+* (***) ***-**67","say \\"hi\\" to c@*.org"}'
    assert mask_text(text, ALL, Style.FULL)[0] == \
        b'{[redacted:email],"x y",NULL,"[redacted:phone]","say \\"hi\\" to [redacted:email]"}'


def test_find_in_part_of_a_buffer() -> None:
    # A DataRow: the 4-byte length before the value is 0x00000041, an "A", which must not hide the address.
    row = b"\x00\x01\x00\x00\x00\x41" + b"john@example.com" + b"\x00\x00\x00\x10" + b"4111111111111111"
    assert ALL.find(row, 6, 22) == [Match(6, 22, "email")]
    assert ALL.find(row, 26) == [Match(26, 42, "credit_card")]
    assert ALL.find(row, 6, 12) == []  # "john@e": the value ends there


def test_find_many_maps_matches_to_values() -> None:
    values = [b"Anna", b"anna@example.com", b"", b"x 4111111111111111 y@z.io", b"12.50"]
    assert ALL.find_many(values) == [
        (1, Match(0, 16, "email")), (3, Match(2, 18, "credit_card")), (3, Match(19, 25, "email"))]
    assert ALL.find_many([b"a\x00b@c.de"]) == [(0, Match(2, 8, "email"))]  # a NUL inside a value


# --- styles -------------------------------------------------------------------------------------------------------

PARTIAL = [
    ("email", "jane.doe@mail.example.com", "j*******@************.com"),
    ("email", "zoë@example.com", "z***@*******.com"),  # ë is two bytes: two stars
    ("email", "élise@example.fr", "é****@*******.fr"),  # a kept character is kept whole
    ("email", "x@y.io", "x@*.io"),
    ("credit_card", "4111 1111 1111 1111", "**** **** **** 1111"),
    ("credit_card", "4111-1111-1111-1111", "****-****-****-1111"),
    ("credit_card", "378282246310005", "***********0005"),
    ("phone", "+1 (555) 123-4567", "+* (***) ***-**67"),
    ("phone", "+14155552671", "+*********71"),
    ("ssn", "123-45-6789", "1**-**-***9"),
    ("iban", "DE89 3704 0044 0532 0130 00", "D*** **** **** **** **** *0"),
    ("ipv4", "192.168.1.1", "1**.***.*.1"),
    ("ipv4", "1.1.1.1", "*.*.*.*"),  # fewer than 5 characters to hide: nothing is kept
    ("ipv6", "2001:db8::1", "2*********1"),  # colons masked too: "::1" must not survive
    ("ipv6", "::1", "***"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE", "A******************E"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "e" + "*" * 19 + "." + "*" * 15 + ".**c"),
    ("pem_private_key", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
     "-" + "*" * 26 + "\n****\n" + "*" * 24 + "-"),  # the BEGIN line no longer reads as one
    ("my_custom", "Zoë", "****"),  # fewer than 5 characters: none kept
    ("my_custom", "Zoë Müller", "Z" + "*" * 10 + "r"),
]


@pytest.mark.parametrize(("detector", "value", "masked"), PARTIAL)
def test_partial(detector: str, value: str, masked: str) -> None:
    out = mask(value.encode(), detector, Style.PARTIAL)
    assert out == masked.encode()
    assert len(out) == len(value.encode())
    assert found(out) == []


def test_partial_of_values_that_do_not_have_the_detectors_shape() -> None:
    # A column declared as email or card may hold anything; partial never reveals more than first and last.
    assert mask(b"n/a", "email", "partial") == b"***"
    assert mask(b"unknown", "credit_card", "partial") == b"*******"
    assert mask(b"see notes", "phone", "partial") == b"*** *****"
    assert mask(b"", "email", "partial") == b""
    assert mask(b"\xff\xfe broken", "ssn", "partial") == b"\xff* *****n"  # invalid UTF-8: byte by byte


def test_full() -> None:
    assert mask(b"jane@example.com", "email", "full") == b"[redacted:email]" == full_token("email")
    assert mask(b"", "credit_card", Style.FULL) == b"[redacted:credit_card]"


def test_hash_is_keyed_deterministic_and_normalised() -> None:
    h = mask(b"4111 1111 1111 1111", "credit_card", Style.HASH, KEY)
    assert h is not None and h.startswith(b"h:") and len(h) == 18
    assert h == mask(b"4111-1111-1111-1111", "credit_card", "hash", KEY) == hash_token(b"4111111111111111",
                                                                                        "credit_card", KEY)
    assert h != mask(b"4111 1111 1111 1111", "credit_card", "hash", b"another-key")
    assert mask(b"Jane@Example.COM", "email", "hash", KEY) == mask(b"jane@example.com", "email", "hash", KEY)
    assert mask(b"DE89 3704 0044 0532 0130 00", "iban", "hash", KEY) == mask(b"DE89370400440532013000", "iban",
                                                                             "hash", KEY)
    with pytest.raises(ValueError, match="key"):
        mask(b"x", "email", "hash")
    with pytest.raises(ValueError, match="key"):
        mask_text(b"a@b.co", ALL, "hash")


def test_hash_tokens_never_read_as_card_numbers() -> None:
    # 16 hex digits without a letter would be a 16-digit number; such tokens get a letter.
    tokens = [hash_token(str(i).encode(), "x", KEY) for i in range(20000)]
    assert all(not t[2:].isdigit() for t in tokens)
    assert any(t[2:3] == b"f" and t[3:].isdigit() for t in tokens)
    assert all(found(b"card " + t) == [] for t in tokens)


def test_null() -> None:
    assert mask(b"jane@example.com", "email", Style.NULL) is None
    assert mask_text(b"mail a@b.co now", ALL, "null") == (None, [("email", 1)])
    assert mask_text(b"nothing here", ALL, "null") == (b"nothing here", [])


def test_styles_say_whether_they_preserve_length() -> None:
    assert Style.PARTIAL.preserves_length
    assert not Style.FULL.preserves_length and not Style.HASH.preserves_length and not Style.NULL.preserves_length
    assert Style("partial") is Style.PARTIAL
    with pytest.raises(ValueError):
        Style("redact")


def test_mask_text_returns_an_unmatched_value_itself() -> None:
    value = b"just a note"
    out, counts = mask_text(value, ALL, Style.FULL)
    assert out is value and counts == []


def test_mask_text_uses_given_matches() -> None:
    values = [b"a@b.co", b"x", b"+14155552671 and c@d.io"]
    by_value: dict[int, list[Match]] = {}
    for i, m in ALL.find_many(values):
        by_value.setdefault(i, []).append(m)
    assert mask_text(values[2], ALL, "full", matches=by_value[2]) == (
        b"[redacted:phone] and [redacted:email]", [("phone", 1), ("email", 1)])


# --- custom detectors ---------------------------------------------------------------------------------------------

def test_custom_detector() -> None:
    employee = custom("employee_id", r"\bEMP-\d{6}\b")
    sc = Scanner([employee, "email"])
    assert found("EMP-123456 wrote to a@b.co; EMP-12345 did not", sc) == [
        ("EMP-123456", "employee_id"), ("a@b.co", "email")]
    assert mask_text(b"id EMP-123456", sc, "partial")[0] == b"id E********6"
    assert mask_text(b"id EMP-123456", sc, "full")[0] == b"id [redacted:employee_id]"


def test_custom_detector_with_validator_flags_and_groups() -> None:
    even = custom("even_ticket", r"(?i)ticket-(\d+)", validator=lambda b: int(b.split(b"-")[1]) % 2 == 0)
    assert found("Ticket-12 ticket-13 TICKET-14", Scanner([even])) == [
        ("Ticket-12", "even_ticket"), ("TICKET-14", "even_ticket")]
    verbose = custom("code", rb"(?x) CODE - [0-9]{3}  # a comment")
    assert found("CODE-123", Scanner([verbose])) == [("CODE-123", "code")]


def test_custom_detectors_come_first_at_a_position() -> None:
    # A custom pattern that starts a byte earlier than a built-in match wins; built-ins still find the rest.
    order = custom("order_ref", r"#\d{16}")
    sc = Scanner(["credit_card", order])
    assert found("#4111111111111111 and 4111111111111111", sc) == [
        ("#4111111111111111", "order_ref"), ("4111111111111111", "credit_card")]


def test_custom_detector_matches_are_widened_to_whole_characters() -> None:
    # In a bytes regex "." is one byte: the match would end inside the two bytes of ë.
    sc = Scanner([custom("name", rb"Zo.. M.")])
    text = "Zoë Müller".encode()
    (m,) = sc.find(text)
    assert text[m.start : m.end].decode() == "Zoë Mü"
    assert mask_text(text, sc, "partial")[0] == "Z*****üller".encode()


def test_custom_detector_non_ascii_literal() -> None:
    sc = Scanner([custom("city", "Zürich+")])
    assert found("in Zürichhh!", sc) == [("Zürichhh", "city")]


@pytest.mark.parametrize(("name", "regex", "message"), [
    ("Bad-Name", "x", "name"),
    ("dup", r"(a)\1", "backreferences"),
    ("named", r"(?P<x>a)", "named groups"),
    ("cond", r"(a)?(?(1)b|c)", "conditionals"),
    ("empty", r"a*", "empty string"),
    ("broken", r"(a", "missing"),
    ("late_flag", r"a(?i)b", "global flags"),
    ("accent_class", "[éè]", "non-ASCII"),
])
def test_custom_detector_errors(name: str, regex: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        custom(name, regex)


# --- properties ---------------------------------------------------------------------------------------------------

SENSITIVE = [v for v, _ in POSITIVES if not v.endswith((" truncated", "\\n"))]
NEAR = [v for v in NEGATIVES if v]
GLUE = ["", " ", ", ", "\n", "\\n", "\\t", "\\u00e9", '"', "{", "}", ":", "-", ".", "@", "+", "(", ")", "/", "é", "—",
        "東", "_", "x", "1", "\t", "<", ">", "'", "\\", "=", ";", "::", "\x00"]


def _fragments() -> st.SearchStrategy[str]:
    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
    return st.one_of(st.sampled_from(SENSITIVE), st.sampled_from(NEAR), st.sampled_from(GLUE), text)


TEXTS = st.lists(_fragments(), max_size=10).map(lambda parts: "".join(parts).encode())
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(TEXTS)
@example(b"\\\xc2\x80jane.doe@example.com")  # a backslash, then a two-byte character
def test_property_matches_are_sane(data: bytes) -> None:
    matches = ALL.find(data)
    assert all(0 <= m.start < m.end <= len(data) for m in matches)
    assert all(a.end <= b.start for a, b in pairwise(matches))
    for m in matches:  # whole characters, and never across a NUL
        data[: m.start].decode()
        data[m.start : m.end].decode()
        assert b"\x00" not in data[m.start : m.end]
    assert ALL.search_any(data) == bool(matches)


@SETTINGS
@given(TEXTS)
@example(b"call 555 123 4567")
def test_property_nothing_found_nothing_changed(data: bytes) -> None:
    if ALL.find(data):
        return
    for style in Style:
        assert mask_text(data, ALL, style, KEY) == (data, [])


@SETTINGS
@given(TEXTS, st.sampled_from([Style.PARTIAL, Style.FULL, Style.HASH]))
@example(b"a@b.co::1", Style.PARTIAL)
@example(b"2001:db8::1", Style.PARTIAL)
@example(b"ab.x@y.com@z.com", Style.HASH)
def test_property_masked_text_holds_no_match(data: bytes, style: Style) -> None:
    out, counts = mask_text(data, ALL, style, KEY)
    assert out is not None
    assert ALL.find(out) == [], (data, out)
    first = ALL.find(data)
    assert sum(n for _, n in counts) >= len(first)
    if sum(n for _, n in counts) == len(first):  # one round (nearly always): exactly the matches were replaced
        assert out == mask_matches(data, first, style, KEY)
    out.decode()  # still valid UTF-8
    if style is Style.PARTIAL:
        assert len(out) == len(data)


def test_masking_uncovers_a_glued_value_and_masks_it_too() -> None:
    data = b"2001:db8::1jane.doe@example.com"
    assert found(data) == [("1jane.doe@example.com", "email")]  # the address is glued to a word character
    once = mask_matches(data, ALL.find(data), Style.PARTIAL)
    assert once == b"2001:db8::1********@*******.com" and found(once) == [("2001:db8::1", "ipv6")]
    assert mask_text(data, ALL, Style.PARTIAL) == (b"2*********1********@*******.com", [("email", 1), ("ipv6", 1)])


def test_mask_text_fails_closed_when_masking_never_settles() -> None:
    # A custom pattern that matches its own partial mask: "a****f" is found again and again.
    greedy = Scanner([custom("greedy", rb"[a-z*]{3,}")])
    assert mask_text(b"abcdef", greedy, Style.PARTIAL) == (None, [("greedy", 8)])
    assert mask_text(b"abcdef", greedy, Style.FULL)[0] is None  # "[redacted:greedy]" holds "redacted", "greedy"


WITH_CUSTOM = Scanner([*ALL.detectors, custom("employee_id", r"\bEMP-\d{6}\b"), custom("plate", r"[A-Z]{2}-\d{3}")])


@SETTINGS
@given(st.lists(st.one_of(TEXTS, st.sampled_from([b"EMP-123456", b"AB-123", b"EMP-12345"])), max_size=4).map(b" ".join),
       st.sampled_from([Style.PARTIAL, Style.FULL, Style.HASH]))
def test_property_custom_detectors_too(data: bytes, style: Style) -> None:
    out, _ = mask_text(data, WITH_CUSTOM, style, KEY)
    assert out is None or WITH_CUSTOM.find(out) == []
    for m in WITH_CUSTOM.find(data):
        data[m.start : m.end].decode()


@SETTINGS
@given(TEXTS)
def test_property_partial_keeps_length_and_every_byte_outside_matches(data: bytes) -> None:
    out = mask_matches(data, ALL.find(data), Style.PARTIAL)
    assert len(out) == len(data)
    outside = bytearray(data)
    masked = bytearray(out)
    for m in ALL.find(data):
        outside[m.start : m.end] = masked[m.start : m.end] = b"\x00" * (m.end - m.start)
    assert masked == outside


@SETTINGS
@given(TEXTS, st.sampled_from([Style.FULL, Style.HASH]))
def test_property_tokens_replace_exactly_the_matches(data: bytes, style: Style) -> None:
    out = mask_matches(data, ALL.find(data), style, KEY)
    expected, pos = [], 0
    for m in ALL.find(data):
        expected += [data[pos : m.start], mask(data[m.start : m.end], m.detector, style, KEY) or b""]
        pos = m.end
    assert out == b"".join([*expected, data[pos:]])


@SETTINGS
@given(st.lists(TEXTS.map(lambda b: b.replace(b"\x00", b"")), max_size=8))
def test_property_one_buffer_finds_what_each_value_finds(values: list[bytes]) -> None:
    each = [(i, m) for i, v in enumerate(values) for m in ALL.find(v)]
    assert ALL.find_many(values) == each


@SETTINGS
@given(TEXTS, st.integers(0, 40), st.integers(0, 40))
def test_property_find_in_a_slice(data: bytes, a: int, b: int) -> None:
    start, end = min(a, b, len(data)), min(max(a, b), len(data))
    shifted = [Match(m.start + start, m.end + start, m.detector) for m in ALL.find(data[start:end])]
    assert ALL.find(data, start, end) == shifted
