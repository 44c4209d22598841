"""The C prefilter (wardgate.masking._prefilter) answers exactly what the Python reference answers.

The reference is :class:`wardgate.masking.detectors.Prefilter`; equality with it, for every subset of the built-in
detectors and every buffer, is the C module's whole contract. Property tests draw buffers three ways: random bytes
(almost never a trigger: checks the "no" path and odd bytes), random strings over the bytes the triggers are made
of (dense near misses: ``9.99.``, ``::``, ``eyJ``...), and random concatenations of realistic fragments (values,
DataRow headers, separators) where triggers form across fragment boundaries. Views into a larger buffer check that
the C code reads nothing before or after the view (a lookbehind past the start would see the bytes around it).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.masking import _prefilter
from wardgate.masking.detectors import _CLASSES, _LITERAL, _TRIGGERS, BUILTIN_DETECTORS, Prefilter, Scanner
from wardgate.protocols.postgres import _datarow
from wardgate.protocols.postgres.encode import data_row

ALL = (1 << len(_prefilter.ORDER)) - 1
MANY = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Buffer = bytes | bytearray | memoryview


@functools.cache
def reference(detectors: int) -> Prefilter:
    return Prefilter([BUILTIN_DETECTORS[n] for i, n in enumerate(_prefilter.ORDER) if detectors >> i & 1])


def bits(*names: str) -> int:
    return sum(1 << _prefilter.ORDER.index(n) for n in names)


def check(buf: bytes, detectors: int, kind: Callable[[bytes], Buffer] = bytes) -> bool:
    """Asserts that native and reference agree on ``buf`` (given to the C code as ``kind(buf)``); returns the answer."""
    want = reference(detectors).reference(buf)
    assert _prefilter.may_match(kind(buf), detectors) is want, (buf, detectors, kind)
    return want


# --- the reference this file was written against ------------------------------------------------------------
# A copy of the trigger table that _prefilter.c implements. If the reference's table changes, the C code must change
# with it: this test fails first, with a pointer to what to update.

PINNED_TRIGGERS: dict[str, tuple[tuple[str, bytes], ...]] = {
    "pem_private_key": (("raw", rb"PRIVATE KEY"),),
    "jwt": (("raw", rb"J(?<=eyJ)"),),
    "aws_access_key": (("raw", rb"IA(?<=A[KS]IA)"),),
    "github_token": (("raw", rb"_(?<=gh[pousr]_)|_pat_(?<=github_pat_)"),),
    "stripe_key": (("raw", rb"_live_(?<=k_live_)"),),
    "slack_token": (("raw", rb"-(?<=xox[abpr]-)"),),
    "email": (("raw", rb"@(?<=[A-Za-z0-9._%+'\x80-\xff-]@)"),),
    "iban": (("class", rb"AA99[A9]{11}|AA99 [A9]{4} [A9]{4}"),),
    "credit_card": (("class", rb"9999999999999"), ("class", rb"9999[ -]9{3,6}[ -]999")),
    "ssn": (("class", rb"[ -]99[ -]9999(?<=999[ -]99[ -]9999)"),),
    "phone": (("raw", rb"\+[1-9]"), ("class", rb"[-.]999[-.]9999(?<=999[-.]999[-.]9999)"), ("class", rb"\(999\)")),
    "ipv6": (("raw", rb"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:"),),
    "ipv4": (("class", rb"\.9\.(?<=9\.9\.)|\.99\.(?<=9\.99\.)|\.999\.(?<=9\.999\.)"),),
}


def test_reference_is_the_one_implemented() -> None:
    assert _TRIGGERS == PINNED_TRIGGERS, "detectors._TRIGGERS changed: update wardgate/masking/_prefilter.c to match"
    assert {rb"9999999999999"} == _LITERAL
    assert bytes(
        ord("9") if 48 <= b <= 57 else ord("A") if 65 <= b <= 90 else ord("a") if 97 <= b <= 122 else b
        for b in range(256)
    ) == _CLASSES


def test_order_is_the_builtin_order() -> None:
    assert tuple(BUILTIN_DETECTORS) == _prefilter.ORDER
    assert tuple(_TRIGGERS) == _prefilter.ORDER


# --- explicit examples, one or more per trigger ---------------------------------------------------------------
# (buffer, detector, answer): each is checked for that detector alone, for all detectors but that one, and for all.

EXAMPLES: list[tuple[bytes, str, bool]] = [
    (b"-----BEGIN RSA PRIVATE KEY-----", "pem_private_key", True),
    (b"PRIVATE KEY", "pem_private_key", True),
    (b"PRIVATE KE", "pem_private_key", False),
    (b"RIVATE KEY", "pem_private_key", False),
    (b"PRIVATE  KEY", "pem_private_key", False),
    (b"private key", "pem_private_key", False),
    (b"eyJ", "jwt", True),
    (b"x.eyJhbGciOi", "jwt", True),
    (b"eyj", "jwt", False),
    (b"yJ", "jwt", False),
    (b"e\x00yJ", "jwt", False),
    (b"AKIA", "aws_access_key", True),
    (b"ASIAIOSFODNN7EXAMPLE", "aws_access_key", True),
    (b"AKI", "aws_access_key", False),
    (b"KIA", "aws_access_key", False),
    (b"ABIA", "aws_access_key", False),
    (b"akia", "aws_access_key", False),
    (b"ghp_", "github_token", True),
    (b"gho_x", "github_token", True),
    (b"gho_", "github_token", True),
    (b"ghu_", "github_token", True),
    (b"ghs_", "github_token", True),
    (b"ghr_", "github_token", True),
    (b"ghx_", "github_token", False),
    (b"github_pat_", "github_token", True),
    (b"github_pat", "github_token", False),
    (b"ithub_pat_", "github_token", False),
    (b"sk_live_", "stripe_key", True),
    (b"k_live_", "stripe_key", True),
    (b"k_live", "stripe_key", False),
    (b"_live_", "stripe_key", False),
    (b"sk_test_", "stripe_key", False),
    (b"xoxb-", "slack_token", True),
    (b"xoxa-1", "slack_token", True),
    (b"xoxp-", "slack_token", True),
    (b"xoxr-", "slack_token", True),
    (b"xoxc-", "slack_token", False),
    (b"oxb-", "slack_token", False),
    (b"a@b", "email", True),
    (b"@b", "email", False),
    (b" @b", "email", False),
    (b"\x00\x00\x00@", "email", False),
    (b"+@", "email", True),
    (b"'@", "email", True),
    (b"%@ -@ .@ _@", "email", True),
    (b"\x80@", "email", True),
    (b"\xff@", "email", True),
    (b"\x7f@", "email", False),
    (b"!@", "email", False),
    (b"Z@", "email", True),
    (b"DE89", "iban", False),  # country and check digits, no account: no IBAN
    (b"DE8937040044053", "iban", True),
    (b"DE893704004405", "iban", False),
    (b"DE89 3704 0044", "iban", True),
    (b"DE89 3704 004", "iban", False),
    (b"ORD000123", "iban", False),
    (b"DE8", "iban", False),
    (b"De89", "iban", False),
    (b"D E89", "iban", False),
    (b"GB82 WEST", "iban", False),
    (b"GB82 WEST 1234", "iban", True),
    (b"4111111111111", "credit_card", True),
    (b"411111111111", "credit_card", False),
    (b"4111 111 111", "credit_card", True),
    (b"4111-111111-111", "credit_card", True),
    (b"4111 1111111 111", "credit_card", False),  # a middle group of 7 digits: no card has one
    (b"4111 111", "credit_card", False),  # one group after the first: no card is that short
    (b"ORD-2024-000123", "credit_card", False),
    (b"4111 11 111", "credit_card", False),
    (b"411 111 111", "credit_card", False),
    (b"4111.111.111", "credit_card", False),
    (b"0000 000-000", "credit_card", True),
    (b"123-45-6789", "ssn", True),
    (b"123 45 6789", "ssn", True),
    (b"123-45 6789", "ssn", True),
    (b"123-45-678", "ssn", False),
    (b"12-45-6789", "ssn", False),
    (b"123-456-7890", "ssn", False),
    (b"123.45.6789", "ssn", False),
    (b"+1", "phone", True),
    (b"+9", "phone", True),
    (b"+0", "phone", False),
    (b"+ 1", "phone", False),
    (b"+", "phone", False),
    (b"2024-01-05 10:30:00+00", "phone", False),
    (b"10:30:00+05:30", "phone", False),
    (b"10:30:00+10:30", "phone", True),
    (b"555-123-4567", "phone", True),
    (b"555.123.4567", "phone", True),
    (b"555-123.4567", "phone", True),
    (b"555 123 4567", "phone", False),
    (b"55-123-4567", "phone", False),
    (b"555-1234-567", "phone", False),
    (b"(555)", "phone", True),
    (b"(5555)", "phone", False),
    (b"(55)", "phone", False),
    (b"(555 ", "phone", False),
    (b"::", "ipv6", True),
    (b":", "ipv6", False),
    (b": :", "ipv6", False),
    (b":a:b:c:", "ipv6", True),
    (b"2001:db8:0:1:", "ipv6", True),
    (b":abcd:ef01:2345:", "ipv6", True),
    (b":abcde:ef01:2345:", "ipv6", False),
    (b"x:abcde:f01:2345:6:", "ipv6", True),
    (b":a:b:c", "ipv6", False),
    (b":a:g:c:", "ipv6", False),
    (b"10:30:00", "ipv6", False),
    (b"10:30:00:00", "ipv6", False),
    (b"10:30:00:00:", "ipv6", True),
    (b"1.2.", "ipv4", True),
    (b"1.22.", "ipv4", True),
    (b"1.222.", "ipv4", True),
    (b"1.2222.", "ipv4", False),
    (b".2.", "ipv4", False),
    (b"1.2", "ipv4", False),
    (b"1..2.", "ipv4", False),
    (b"123.45", "ipv4", False),
    (b"192.168.0.1", "ipv4", True),
]


@pytest.mark.parametrize(("buf", "name", "want"), EXAMPLES, ids=[f"{n}:{b!r}" for b, n, _ in EXAMPLES])
def test_example(buf: bytes, name: str, want: bool) -> None:
    assert check(buf, bits(name)) is want
    check(buf, ALL & ~bits(name))
    assert check(buf, ALL) is (want or reference(ALL & ~bits(name)).reference(buf))
    # At offset 0 and at the very end of a larger buffer, behind or before bytes that extend no trigger.
    for padded in (buf + b"\x00" * 7, b"\x00" * 7 + buf, b"zzzz " * 20 + buf):
        assert check(padded, bits(name)) is want


def test_no_detectors_and_empty_buffers() -> None:
    for buf in (b"", b"a@b", b"4111111111111111"):
        assert check(buf, 0) is False
    for detectors in range(ALL + 1):  # every subset: the empty buffer holds nothing
        assert _prefilter.may_match(b"", detectors) is False


def test_every_subset_of_detectors() -> None:
    """One buffer holding one trigger of each detector, with a detector's trigger removed in turn."""
    parts = [b"PRIVATE KEY", b"eyJ", b"AKIA", b"ghp_", b"sk_live_", b"xoxb-", b"a@b", b"DE89 3704 0044",
             b"4111 1111 111", b"123-45-6789", b"+44", b"::1", b"1.2.3.4"]
    for i, _ in enumerate(parts):
        buf = b"\x00".join(p for j, p in enumerate(parts) if j != i)
        for detectors in range(0, ALL + 1, 7):
            check(buf, detectors)
        assert check(buf, 1 << i) is False
    full = b"\x00".join(parts)
    for detectors in range(1, ALL + 1):
        assert check(full, detectors) is True


def test_arguments() -> None:
    with pytest.raises(ValueError, match="bit set"):
        _prefilter.may_match(b"", ALL + 1)
    with pytest.raises(ValueError, match="bit set"):
        _prefilter.may_match(b"", -1)
    with pytest.raises(ValueError, match="bit set"):
        _prefilter.may_match(b"", 1 << 100)
    with pytest.raises(TypeError):
        _prefilter.may_match("a@b", ALL)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _prefilter.may_match(b"a@b", 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _prefilter.may_match(b"a@b")  # type: ignore[call-arg]
    with pytest.raises(BufferError):  # PyBUF_SIMPLE: a strided view is refused, not copied
        _prefilter.may_match(memoryview(b"a@b a@b")[::2], ALL)


def test_big_buffers_without_the_gil() -> None:
    """From 64 KiB on the scan runs without the GIL: same answers, triggers at either end."""
    ordinary = b"".join(data_row([b"%d" % i, b"Anna Smith", b"paid", b"2024-01-05 10:30:00+00"]) for i in range(4000))
    assert len(ordinary) > 64 * 1024
    assert check(ordinary, ALL) is False
    assert check(b"a@b" + ordinary, ALL) is True
    assert check(ordinary + b"::", ALL) is True
    assert check(ordinary + b"+1", ALL, bytearray) is True
    assert check(ordinary + b"+0", ALL, memoryview) is False


# --- properties -----------------------------------------------------------------------------------------------

KINDS: list[Callable[[bytes], Buffer]] = [bytes, bytearray, memoryview]

#: The bytes the triggers are made of, plus a few others: strings over them are dense in near misses.
TRIGGER_BYTES = b"0123456789 .-:()+@_'%AaBDEFIJKSVPRTYeyxobpsrklivghtu\x00\x80\xff!"

#: Realistic pieces: values with and without sensitive data, DataRow headers, separators, halves of triggers.
FRAGMENTS: list[bytes] = [
    # e-mail addresses and things with @
    b"anna.smith@example.com", b"o'brien+tag@mail.example.org", b"zo\\u00eb@example.com", b"icon@2x.png",
    b"@", b"user@", b"@host", b"\xc3\xa9l\xc3\xa9onore@firma.de",
    # cards, grouped and contiguous, and digit runs around 13
    b"4111 1111 1111 1111", b"5555555555554444", b"3782 822463 10005", b"4012-8888-8888-1881", b"4111111111111",
    b"411111111111", b"1234567890123", b"4111", b" 111", b"-111",
    # SSNs, phones
    b"123-45-6789", b"078 05 1120", b"12-34", b"+1 (555) 234-5678", b"+44 20 7946 0958", b"555-234-5678",
    b"555.234.5678", b"1-800-555-0199", b"(555)", b"(55", b"5)", b"+0", b"+", b"+4",
    # IPs
    b"192.168.0.1", b"10.0.0.255", b"2001:db8::1", b"::1", b"fe80:0:0:0:", b"::ffff:192.0.2.1", b":", b":a", b"a:",
    b"1.", b".2", b".22.", b"1.2.3", b"255.",
    # IBAN, tokens, keys
    b"DE89 3704 0044 0532 0130 00", b"GB82WEST12345698765432", b"DE", b"89",
    b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", b"ey", b"J", b"AKIAIOSFODNN7EXAMPLE", b"AK", b"IA", b"AS",
    b"ghp_" + b"a" * 36, b"gh", b"p_", b"github_pat", b"_pat_", b"sk_live_abcdefghij", b"k_live", b"_live_",
    b"xoxb-123456789012", b"xox", b"b-", b"-----BEGIN RSA PRIVATE KEY-----", b"PRIVATE", b" KEY", b"PRIVATE KE",
    # ordinary values
    b"2024-01-05", b"2024-01-05 10:30:00+00", b"2024-01-05T10:30:00+05:30", b"10:30:00.123456+00", b"123.45",
    b"0.5", b"-12.50", b"ORD-00000123", b"Anna Smith", b"M\xc3\xbcller", b"paid", b"on hold", b"1", b"42", b"99999",
    b"please deliver to the back door", b"550e8400-e29b-41d4-a716-446655440000", b"Ingrid",
    # DataRow framing and separators
    b"D", b"\x00\x00\x00@", b"\x00\x00\x00+", b"\x00\x00\x00\x05", b"\x00\x04", b"\xff\xff\xff\xff", b"\x00",
    b" ", b"-", b".", b",", b"\\n", b"\\u2028", b"\n", b'"', b"{", b"}", b"\t",
]


@MANY
@given(buf=st.binary(max_size=200), detectors=st.integers(0, ALL), kind=st.sampled_from(KINDS))
def test_random_bytes(buf: bytes, detectors: int, kind: Callable[[bytes], Buffer]) -> None:
    check(buf, detectors, kind)


@MANY
@given(
    buf=st.lists(st.sampled_from(TRIGGER_BYTES), max_size=60).map(bytes),
    detectors=st.integers(0, ALL),
    kind=st.sampled_from(KINDS),
)
@example(buf=b"9.99.", detectors=ALL, kind=bytes)
def test_trigger_alphabet(buf: bytes, detectors: int, kind: Callable[[bytes], Buffer]) -> None:
    check(buf, detectors, kind)


@MANY
@given(
    value=st.lists(st.sampled_from(TRIGGER_BYTES), max_size=17).map(bytes),
    after=st.binary(max_size=20),
    detectors=st.integers(1, ALL),
)
@example(value=b"ORD-2024-000123", after=b"", detectors=ALL)
@example(value=b"555-123-4567", after=b"0", detectors=ALL)
@example(value=b"xoxb-1", after=b"", detectors=ALL)
def test_short_values_alone_and_in_a_row(value: bytes, after: bytes, detectors: int) -> None:
    """A value of up to 16 bytes first takes the vector test of _prefilter_core.h (quick_clear): read straight
    from the buffer when 16 bytes are there (a value inside a row, with the next value's bytes after it), copied
    when not (a value alone). Dense near misses of every trigger, both ways, agree with the reference."""
    want = reference(detectors).reference(value)
    assert _prefilter.may_match(value, detectors) is want
    assert _datarow.may_match(data_row([value, after]), (0,), (0,), detectors) is want


@MANY
@given(
    pieces=st.lists(st.sampled_from(FRAGMENTS), max_size=12),
    detectors=st.integers(0, ALL),
    kind=st.sampled_from(KINDS),
)
def test_fragment_concatenations(pieces: list[bytes], detectors: int, kind: Callable[[bytes], Buffer]) -> None:
    check(b"".join(pieces), detectors, kind)


@MANY
@given(
    pieces=st.lists(st.sampled_from(FRAGMENTS), max_size=6),
    single=st.sampled_from(list(_prefilter.ORDER)),
)
def test_fragment_concatenations_one_detector(pieces: list[bytes], single: str) -> None:
    """One detector at a time: where all are chosen, one detector's hit hides another's miss."""
    check(b"".join(pieces), bits(single))


@MANY
@given(
    before=st.lists(st.sampled_from(FRAGMENTS), max_size=4).map(b"".join),
    middle=st.lists(st.sampled_from(FRAGMENTS + [bytes([b]) for b in TRIGGER_BYTES]), max_size=6).map(b"".join),
    after=st.lists(st.sampled_from(FRAGMENTS), max_size=4).map(b"".join),
    detectors=st.integers(1, ALL),
)
def test_views_read_only_their_bytes(before: bytes, middle: bytes, after: bytes, detectors: int) -> None:
    """A view into a larger buffer: the bytes around it would complete a trigger if the C code read them."""
    whole = before + middle + after
    view = memoryview(whole)[len(before) : len(before) + len(middle)]
    want = reference(detectors).reference(middle)
    assert _prefilter.may_match(view, detectors) is want
    mutable = memoryview(bytearray(whole))
    assert _prefilter.may_match(mutable[len(before) : len(before) + len(middle)], detectors) is want


@MANY
@given(
    pieces=st.lists(st.sampled_from(FRAGMENTS), max_size=8).map(b"".join),
    cuts=st.tuples(st.integers(0, 200), st.integers(0, 200)),
    detectors=st.integers(1, ALL),
)
def test_views_cut_anywhere(pieces: bytes, cuts: tuple[int, int], detectors: int) -> None:
    """A view cut at arbitrary offsets, often through a trigger: its halves are no trigger, the bytes beyond the cut
    would complete one."""
    a, b = sorted(min(c, len(pieces)) for c in cuts)
    want = reference(detectors).reference(pieces[a:b])
    assert _prefilter.may_match(memoryview(pieces)[a:b], detectors) is want


def test_every_view_of_each_example() -> None:
    """Every sub-view of every explicit example, for its detector and for all: the edge cases of each trigger at
    the start and at the end of the buffer."""
    for buf, name, _ in EXAMPLES:
        whole = memoryview(buf)
        for a in range(len(buf) + 1):
            for b in range(a, len(buf) + 1):
                for detectors in (bits(name), ALL):
                    assert _prefilter.may_match(whole[a:b], detectors) is reference(detectors).reference(buf[a:b])


def test_random_rows_seeded() -> None:
    """Many DataRow runs of random fragments, by a seeded generator (reproducible, more than hypothesis draws)."""
    rng = random.Random(5)
    for _ in range(20000):
        rows = [data_row([b"".join(rng.choices(FRAGMENTS, k=rng.randint(0, 3))) for _ in range(rng.randint(1, 4))])
                for _ in range(rng.randint(1, 5))]
        check(b"".join(rows), rng.randint(1, ALL))


# --- what the scanner finds, the prefilter lets through --------------------------------------------------------

POSITIVES: list[bytes] = [
    b"anna.smith@example.com", b"o'brien+tag@mail.example.org", b"zo\\u00eb@example.com",
    b"4111 1111 1111 1111", b"5555555555554444", b"3782 822463 10005", b"4012-8888-8888-1881",
    b"123-45-6789", b"078 05 1120",
    b"+1 (555) 234-5678", b"+44 20 7946 0958", b"555-234-5678", b"555.234.5678", b"1-800-555-0199", b"(555) 234-5678",
    b"192.168.0.1", b"10.0.0.255", b"2001:db8::1", b"::1", b"fe80:0:0:0:0:0:0:1", b"::ffff:192.0.2.1",
    b"DE89 3704 0044 0532 0130 00", b"GB82WEST12345698765432",
    b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    b"AKIAIOSFODNN7EXAMPLE", b"ghp_" + b"a" * 36, b"github_pat_" + b"b" * 22, b"sk_live_abcdefghij",
    b"rk_live_0123456789",
    b"xoxb-123456789012", b"-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
    b"Call me on +1 555 234 5678 please", b"mail anna@example.com today",
]


@pytest.mark.parametrize("value", POSITIVES)
def test_scanner_finds_are_let_through(value: bytes) -> None:
    scanner = Scanner.builtin()
    assert scanner.find(value), "not a positive example"
    row = b"D\x00\x00\x00" + bytes([len(value) & 255]) + value + b"D"
    assert _prefilter.may_match(row, ALL) is True
    assert check(row, ALL) is True
    for d in {m.detector for m in scanner.find(value)}:  # and for the detector that found it, alone
        assert check(row, bits(d)) is True
        assert check(data_row([b"1", value, b"x"]), bits(d)) is True


def test_ordinary_rows_are_cleared() -> None:
    rows = b"".join(
        data_row([b"%d" % i, b"Anna Smith", b"Please deliver to the back door", b"ORD-%08d" % i, b"%d.45" % i,
                  b"2024-01-05 10:30:00+00", b"shipped"])
        for i in range(1000)
    )
    assert check(rows, ALL) is False
