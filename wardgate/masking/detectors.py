"""Detectors: what sensitive values look like, as bytes regexes plus the checksums that a regex cannot do.

Values arrive as UTF-8 bytes (PostgreSQL text-format fields, JSON text, array literals) and stay bytes: nothing
here decodes a buffer. A :class:`Scanner` joins the chosen detectors into **one** compiled regex, an alternation
in which every branch ends with an empty marker group, so one pass over a buffer finds candidates of every kind
and ``Match.lastindex`` says which branch found each. Validators (Luhn, mod-97, octet ranges...) run only on
those candidates, which are rare in ordinary data.

CPython's ``re`` has no multi-pattern automaton, so the shape of the built-in patterns decides the speed (a
plain alternation of thirteen detectors scanned typical column values at 4 MB/s; this shape is several times
faster, see docs/masking.md):

* The built-in part of the regex starts with **the byte before a match**: any byte but a letter, digit or ``_``.
  A regex whose first item is a byte class lets CPython skip, with one table lookup per byte, every position
  where it cannot start: the insides of words and numbers. The scanner puts a NUL before each buffer, so a value's
  first token follows such a byte too.
* Each branch then begins with a byte class or literal (``[2-6]`` for cards, ``\\+`` for E.164 phones), which
  CPython tests before entering the branch: at most boundaries a branch costs one bitmap test. Checks on the
  byte before a match that go beyond "not a word character" (a card does not follow a ``.`` or ``+``) are made
  in Python on the rare candidates (``Branch.not_after``), not by a lookbehind at every boundary.
* E-mail addresses are found from their ``@``: the branch matches the domain after it, and the local part is
  taken backwards from it, so the insides of ordinary words cost nothing.
* A match also starts after the JSON escapes ``\\n \\r \\t \\b \\f`` and ``\\uXXXX`` (``"Call me\\n+1 555 123
  4567"`` holds a phone number after a line break, not after an ``n``); the branches appear again behind each
  kind of escape. Letter-led detectors never start right after a backslash, so a replacement cannot swallow
  half an escape.
* Built-in matches begin and end on ASCII bytes (e-mail addresses may hold whole UTF-8 sequences), so they never
  cut through a multi-byte character. Custom patterns can; their matches are widened to whole characters.
* No built-in pattern crosses a NUL byte, which PostgreSQL text values cannot hold: scanning values joined with
  NUL finds exactly what scanning each value finds (:meth:`Scanner.find_many`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import ModuleType
from typing import NamedTuple

_native: ModuleType | None
try:
    from . import _prefilter as _native
except ImportError:  # not built (a source checkout without `pip install -e .`): the regexes answer
    _native = None

#: Returns how many leading bytes of a candidate form a valid match; 0 rejects it. Most validators answer
#: ``len(candidate)`` or 0; the card and IBAN validators may drop a trailing digit group the regex took greedily
#: (``4111 1111 1111 1111 123``: a card followed by its CVV).
Validate = Callable[[bytes], int]


class Match(NamedTuple):
    """A validated match: ``buf[start:end]`` is a value the detector named ``detector`` recognised."""

    start: int
    end: int
    detector: str


class Lead(IntEnum):
    """Where a branch's match starts (see the module doc)."""

    FREE = 0  # a custom pattern: where its regex match starts, anywhere
    AFTER = 1  # right after a byte that is not a letter, digit or _ (or after a JSON escape)
    LOCAL = 2  # the branch matches from an e-mail address's @; the local part before it is found backwards


@dataclass(frozen=True, slots=True)
class Branch:
    """One alternative of a detector's regex. ``not_after``: bytes that may not come right before the match."""

    source: bytes
    lead: Lead = Lead.FREE
    not_after: bytes = b""


@dataclass(frozen=True, slots=True)
class Detector:
    """A named kind of sensitive value: regex branches and an optional validator (see :data:`Validate`)."""

    name: str
    branches: tuple[Branch, ...]
    validate: Validate | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"detector name {self.name!r}: use lower-case letters, digits and _ (at most 40)")
        if not self.branches:
            raise ValueError(f"detector {self.name!r} has no pattern")


_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

# --- the built-in patterns ------------------------------------------------------------------------------------
# Each starts right after the boundary byte (Lead.AFTER), except the e-mail domain, which starts after the @.

# Not followed by a word character, a decimal part, or an @ (then the token is an address's local part).
_DIGIT_END = r"(?![0-9A-Za-z_@]|\.[0-9])"
_NANP_END = r"(?![0-9A-Za-z_@]|[-.][0-9])"

# E-mail: RFC 5322 dot-atoms without the rarely used ! # $ & * / = ? ^ ` { | } ~, plus UTF-8 (RFC 6531 local
# parts, IDN domains in Unicode form). The retina image names of web projects (icon@2x.png) are not addresses.
_LABEL_CHAR = r"[A-Za-z0-9\x80-\xff]"
_LABEL_REST = r"(?:[A-Za-z0-9\x80-\xff-]{0,61}[A-Za-z0-9\x80-\xff])?"
EMAIL_DOMAIN = (
    f"{_LABEL_CHAR}(?<=@[\\x00-\\xff])(?!(?<=[0-9])x\\.){_LABEL_REST}\\.(?:{_LABEL_CHAR}{_LABEL_REST}\\.)*"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59})(?![A-Za-z0-9_@-]|\.[A-Za-z0-9])"
)
# The local part is the run of local-part bytes right before the @, less a JSON escape letter before it and the
# punctuation it may not start with. It is matched backwards (on the reversed bytes), so it may hold \uXXXX
# escapes, as JSON text encoded with ensure_ascii writes "zo\u00eb@example.com": see _local_start.
_LOCAL_RUN = re.compile(rb"(?:[0-9A-Fa-f]{4}u\\|[A-Za-z0-9._%+'\x80-\xff-]){1,129}")
_LOCAL_ESCAPE = re.compile(rb"\\u([0-9A-Fa-f]{4})")
_HEX = frozenset(b"0123456789ABCDEFabcdef")


def _local_start(data: bytes, at: int, floor: int) -> int:
    """Where the local part of the address whose @ is at ``at`` starts, or -1 (none, or over 128 bytes)."""
    run = _LOCAL_RUN.match(data[max(floor, at - 800) : at][::-1])
    if run is None or run.end() > 128:
        return -1
    s = at - run.end()
    if data[s - 1] == 0x5C and data[s] < 0x80:  # an escape ends right before: \n, \u2028 (\uXXXX of a letter
        if data[s] == 0x75 and all(c in _HEX for c in data[s + 1 : s + 5]):  # is in the run)
            s += 5
        else:
            s += 1
    if data.find(b"\\", s, at) >= 0:  # escapes in the run: the local part starts after the last one that is no letter
        for esc in _LOCAL_ESCAPE.finditer(data, s, at):
            if not chr(int(esc.group(1), 16)).isalnum():
                s = esc.end()
    while s < at and data[s] in b".%+'-":
        s += 1
    return s if s < at else -1


# Cards: the first digit of a network's range (2-6), then 13-19 digits in all, contiguous or in groups of 3-6
# after a first group of 4, separated by single spaces or dashes. Luhn, network and length: _card.
CARD = r"[2-6][0-9]{3}(?:[0-9]{9,15}+|(?:[ -][0-9]{3,6}){2,4})" + _DIGIT_END

# US Social Security numbers, always written with dashes or spaces (a bare 9-digit integer is not one).
SSN = r"[0-8][0-9]{2}(?:-[0-9]{2}-|\x20[0-9]{2}\x20)[0-9]{4}(?![0-9A-Za-z_@]|[-.][0-9])"

# Phones. E.164: + and 8-15 digits, optionally grouped by single spaces, dashes or dots, with an area code in
# parentheses allowed ("+44 (0)20 7946 0958"). NANP: (xxx) xxx-xxxx, xxx-xxx-xxxx, xxx.xxx.xxxx, optionally
# after "1-", "1." or "1 ".
E164 = r"\+[1-9][0-9]*+(?:[ .-]?\([0-9]{1,4}\)[ .-]?[0-9]++|[ .-][0-9]++)*+" + _DIGIT_END
NANP = r"[2-9][0-9]{2}(?:-[0-9]{3}-|\.[0-9]{3}\.)[0-9]{4}" + _NANP_END
NANP_PAREN = r"\([2-9][0-9]{2}\) ?[0-9]{3}[-.][0-9]{4}" + _NANP_END
NANP_ONE = (
    r"1(?:-[2-9][0-9]{2}-[0-9]{3}-|\.[2-9][0-9]{2}\.[0-9]{3}\.| ?\([2-9][0-9]{2}\) ?[0-9]{3}-"
    r"| [2-9][0-9]{2}-[0-9]{3}-)[0-9]{4}" + _NANP_END
)

# IBAN: country code, check digits, then 11-30 letters/digits, compact or in space-separated groups of 4.
IBAN = r"[A-Z][A-Z][0-9]{2}(?:[A-Z0-9]{11,30}+|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?![0-9A-Za-z_@])"

IPV4 = r"[0-9][0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}" + _DIGIT_END

# IPv6: the first group and its colon, then cheap guards (the rest holds "::", or 6 more colons, or 5 and an
# embedded IPv4) so that words, times (10:30:00) and MAC addresses are refused inside the regex; the ipaddress
# module decides.
_H = "[0-9A-Fa-f]"
_HC = "[0-9A-Fa-f:]"
_IPV6_REST = f"{_HC}{{0,37}}(?:(?<=:)[0-9]{{1,3}}(?:\\.[0-9]{{1,3}}){{3}})?" + r"(?![0-9A-Za-z_:@]|\.[0-9])"
IPV6 = (
    f"{_H}{_H}{{0,3}}+:(?:(?=:)|(?={_HC}{{0,36}}::)|(?=(?:{_H}{{1,4}}:){{6}}{_H})"
    f"|(?=(?:{_H}{{1,4}}:){{5}}[0-9]{{1,3}}\\.))" + _IPV6_REST
)
IPV6_COLONS = "::" + _IPV6_REST  # ::1, ::ffff:192.0.2.1

_B64URL = "[A-Za-z0-9_-]"
JWT = f"eyJ{_B64URL}{{2,}}+\\.{_B64URL}{{2,}}+\\.{_B64URL}*+(?!{_B64URL}|\\.[A-Za-z0-9]|@)"

_ALNUM_END = "(?![A-Za-z0-9_@])"
AWS = r"A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9@])"
GITHUB = r"g(?:h[pousr]_[A-Za-z0-9]{36,251}|ithub_pat_[A-Za-z0-9_]{22,247})" + _ALNUM_END
STRIPE = r"[rs]k_live_[A-Za-z0-9]{10,247}" + _ALNUM_END
SLACK = r"xox[abpr]-[A-Za-z0-9-]{10,250}+(?![A-Za-z0-9_@-])"

# PEM private keys: the BEGIN line through the matching END line. Without an END line (a truncated value) the
# match runs over the base64 lines (and JSON-escaped line breaks) and stops at the first other byte.
_PEM_LABEL = r"[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
PEM_PRIVATE_KEY = (
    f"-----BEGIN {_PEM_LABEL}(?:[^\\x00]{{0,65536}}?-----END {_PEM_LABEL}|[A-Za-z0-9+/=\\r\\n\\\\]*+)"
)

# --- validators -----------------------------------------------------------------------------------------------

_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")  # a digit -> the digit sum of its double
_SEPARATORS = re.compile(b"([ -])")


def luhn(digits: bytes) -> bool:
    """The Luhn (mod 10) check of a string of ASCII digits (sums in C: a translate table doubles digits)."""
    return (sum(digits[-1::-2]) + sum(digits[-2::-2].translate(_DOUBLED)) - 48 * len(digits)) % 10 == 0


def _card_network(d: bytes) -> bool:
    """Is ``d`` (digits) in the number range and length of a card network? Visa 13-digit numbers are refused:
    they are no longer issued, and 13-digit EAN barcodes (prefixes 400-440 are German) would pass Luhn 1 in 10.
    (Equal-length digit strings compare as bytes as they do as numbers.)"""
    n, p2, p4 = len(d), d[:2], d[:4]
    if p2[0] == 0x34:  # Visa
        return n in (16, 19)
    if b"51" <= p2 <= b"55" or b"2221" <= p4 <= b"2720":  # Mastercard
        return n == 16
    if p2 in (b"34", b"37"):  # American Express
        return n == 15
    if (b"2200" <= p4 <= b"2204" or b"3528" <= p4 <= b"3589" or p2[0] == 0x36 or p2 == b"50"
            or b"56" <= p2 <= b"58"):
        return 16 <= n <= 19  # Mir, JCB, Discover/UnionPay/RuPay/Maestro 6x, Maestro 50/56-58
    if p2 in (b"36", b"38", b"39") or b"300" <= d[:3] <= b"305":  # Diners Club
        return 14 <= n <= 19
    return False


def _card(candidate: bytes) -> int:
    """Luhn, network range and length; when the regex took trailing groups greedily (a CVV after the number),
    the longest valid prefix that ends at a group boundary. Groups are separated by one kind of separator."""
    digits = candidate.translate(None, b" -")
    mixed = b" " in candidate and b"-" in candidate
    if not mixed and len(digits) <= 19 and _card_network(digits) and luhn(digits):
        return len(candidate)
    if len(digits) == len(candidate):
        return 0
    parts = _SEPARATORS.split(candidate)  # group, separator, group, ...
    k = 1
    while k + 1 < len(parts) and parts[k] == parts[1]:
        k += 2
    groups = parts[:k:2]
    for n in range(len(groups) - (not mixed), 0, -1):
        digits = b"".join(groups[:n])
        if len(digits) < 13:
            return 0
        if len(digits) <= 19 and _card_network(digits) and luhn(digits):
            return len(digits) + n - 1
    return 0


def _ssn(candidate: bytes) -> int:
    """SSA rules: area not 000, 666 or 900-999 (the regex refuses 9xx); group not 00; serial not 0000."""
    area, group, serial = candidate[:3], candidate[4:6], candidate[7:]
    ok = area not in (b"000", b"666") and group != b"00" and serial != b"0000"
    return len(candidate) if ok else 0


def _phone(candidate: bytes) -> int:
    """E.164 numbers hold 8-15 digits; a single dot is a decimal point (+1234.5678), not a separator."""
    if candidate[0] != 0x2B:  # NANP shapes are exact in the regex
        return len(candidate)
    digits = len(candidate.translate(None, b"+ .-()"))
    ok = 8 <= digits <= 15 and candidate.count(b".") != 1
    return len(candidate) if ok else 0


# ISO 13616 registry: country code -> IBAN length.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_ok(iban: str) -> bool:
    """Country code, the registry's length for it, check digits 02-98 and the mod-97 checksum."""
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not "02" <= iban[2:4] <= "98":
        return False
    return int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


def _iban(candidate: bytes) -> int:
    groups = candidate.split(b" ")
    for k in range(len(groups), 0, -1):
        if iban_ok(b"".join(groups[:k]).decode("ascii")):
            return sum(map(len, groups[:k])) + k - 1
    return 0


def _ipv4(candidate: bytes) -> int:
    """Octets 0-255 without leading zeros (01.02.03.04 is not an address: inet_aton would read it as octal)."""
    for octet in candidate.split(b"."):
        if (len(octet) > 1 and octet[0] == 0x30) or int(octet) > 255:
            return 0
    return len(candidate)


def _ipv6(candidate: bytes) -> int:
    if candidate == b"::":  # the unspecified address, and Haskell's type annotations
        return 0
    try:
        ipaddress.IPv6Address(candidate.decode("ascii"))
    except ValueError:
        return 0
    return len(candidate)


def _b(source: str, not_after: bytes = b"") -> Branch:
    return Branch(source.encode("ascii"), Lead.AFTER, not_after)


#: The built-in detectors by name, in the order a scanner tries them at one position.
BUILTIN_DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector("pem_private_key", (_b(PEM_PRIVATE_KEY),), None, "PEM private key block (BEGIN ... END)"),
        Detector("jwt", (_b(JWT, b"\\-"),), None, "JSON Web Token (eyJ... header, payload, signature)"),
        Detector("aws_access_key", (_b(AWS, b"\\"),), None, "AWS access key id (AKIA/ASIA + 16)"),
        Detector("github_token", (_b(GITHUB, b"\\"),), None,
                 "GitHub token (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)"),
        Detector("stripe_key", (_b(STRIPE, b"\\"),), None,
                 "Stripe live secret or restricted key (sk_live_, rk_live_)"),
        Detector("slack_token", (_b(SLACK, b"\\"),), None, "Slack token (xoxa-, xoxb-, xoxp-, xoxr-)"),
        Detector("email", (Branch(EMAIL_DOMAIN.encode("ascii"), Lead.LOCAL),), None,
                 "e-mail address (ASCII or UTF-8)"),
        Detector("iban", (_b(IBAN, b"\\"),), _iban, "IBAN with registry length and mod-97 checksum"),
        Detector("credit_card", (_b(CARD, b".+"),), _card, "payment card number with network range, length and Luhn"),
        Detector("ssn", (_b(SSN, b".+-"),), _ssn, "US Social Security number (dashed or spaced, SSA rules)"),
        Detector("phone", (_b(E164, b")+"), _b(NANP, b".+-"), _b(NANP_PAREN), _b(NANP_ONE, b".+-")), _phone,
                 "phone number: E.164 with +, or NANP shapes"),
        Detector("ipv6", (_b(IPV6, b"."), _b(IPV6_COLONS, b".")), _ipv6, "IPv6 address"),
        Detector("ipv4", (_b(IPV4, b"."),), _ipv4, "IPv4 address (dotted quad, octets 0-255)"),
    )
}


# --- prefilter ------------------------------------------------------------------------------------------------
# For each built-in detector, substrings that every one of its matches contains, whatever bytes surround it.
# A buffer that holds none of them holds no match in any part of it, so a run of DataRows (values glued to length
# headers, where the scanner's own boundary checks would see the wrong neighbours) can be cleared with a few
# memchr-speed searches instead of a scan. "class" substrings are searched in the buffer translated by _CLASSES
# (every digit becomes 9, every capital A, every small letter a): "9999 999" is the start of a grouped card.
_CLASSES = bytes(
    0x39 if 0x30 <= b <= 0x39 else 0x41 if 0x41 <= b <= 0x5A else 0x61 if 0x61 <= b <= 0x7A else b for b in range(256)
)
_TRIGGERS: dict[str, tuple[tuple[str, bytes], ...]] = {
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
#: Class substrings searched as plain text (a memchr-speed search beats a regex led by a digit or capital).
_LITERAL = frozenset({rb"9999999999999"})


class Prefilter:
    """Answers "could any of these detectors match anywhere in this buffer?" soundly and fast: never no when a
    scan of any part of the buffer would find something. Custom detectors have no known substrings, so a scanner
    with one always answers yes (its buffers are scanned value by value)."""

    __slots__ = ("_class", "_literals", "_native", "_raw", "always")

    def __init__(self, detectors: Iterable[Detector]) -> None:
        raw: list[bytes] = []
        klass: list[bytes] = []
        literals: list[bytes] = []
        self.always = False
        for d in detectors:
            triggers = _TRIGGERS.get(d.name)
            if triggers is None or BUILTIN_DETECTORS.get(d.name) is not d:
                self.always = True
                continue
            for kind, text in triggers:
                (raw if kind == "raw" else literals if text in _LITERAL else klass).append(text)
        self._raw = re.compile(b"|".join(raw)).search if raw else None
        self._class = re.compile(b"|".join(klass)).search if klass else None
        self._literals = tuple(literals)
        # The same question in one pass of C (wardgate/masking/_prefilter.c, built with the package); the
        # regexes above are its specification, and its tests hold it to them.
        self._native = 0
        if _native is not None and not self.always:
            self._native = sum(1 << _native.ORDER.index(d.name) for d in detectors)

    @property
    def native_bits(self) -> int:
        """The detectors as the C prefilter's bit set; 0 when it cannot answer (not built, or custom detectors)."""
        return self._native

    def may_match(self, buf: bytes | bytearray | memoryview) -> bool:
        if self._native:
            return bool(_native.may_match(buf, self._native))  # type: ignore[union-attr]
        return self.reference(buf)

    def reference(self, buf: bytes | bytearray | memoryview) -> bool:
        """The pure-Python answer (the specification of the native one)."""
        if self.always:
            return True
        if self._raw is not None and self._raw(buf) is not None:
            return True
        if self._class is None and not self._literals:
            return False
        classes = (buf if isinstance(buf, bytes) else bytes(buf)).translate(_CLASSES)
        if self._class is not None and self._class(classes) is not None:
            return True
        return any(t in classes for t in self._literals)


# --- custom detectors -----------------------------------------------------------------------------------------

_GLOBAL_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
# The start of a value (^, \A): right after the NUL the scanner puts before it (or after a line break, with (?m)).
_VALUE_START = rb"(?<![^\x00])"
_LINE_START = rb"(?<![^\x00\n])"


def _to_bytes_pattern(name: str, regex: str | bytes) -> bytes:
    """The pattern as a bytes regex that can sit inside an alternation.

    Refused: backreferences and named groups (the group numbers and names of the combined pattern are not the
    pattern's own) and conditionals. A leading global flag group ``(?i)`` becomes a scoped one. In a ``str``
    pattern, a non-ASCII character outside a class becomes the group of its UTF-8 bytes; inside a class it is
    refused, because a bytes class holds single bytes.
    """
    text = regex if isinstance(regex, str) else regex.decode("latin-1")
    flags = ""
    m = _GLOBAL_FLAGS.match(text)
    if m:
        flags, text = m.group(1), text[m.end() :]
    out: list[bytes] = []
    i, n, in_class = 0, len(text), False
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            if not in_class and text[i + 1] in "123456789":
                raise ValueError(f"custom detector {name!r}: backreferences are not supported")
            if not in_class and text[i + 1] == "A":
                out.append(_VALUE_START)
                i += 2
                continue
            out.append(text[i : i + 2].encode("latin-1"))
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            j = i + 1 + (text[i + 1 : i + 2] == "^")
            if text[j : j + 1] == "]":  # a ] right after [ or [^ is a literal
                out.append(text[i : j + 1].encode("latin-1"))
                i = j + 1
                continue
        elif c == "^":
            out.append(_LINE_START if "m" in flags else _VALUE_START)
            i += 1
            continue
        elif c == "(" and text.startswith(("(?P<", "(?P=", "(?("), i):
            raise ValueError(f"custom detector {name!r}: named groups, backreferences and conditionals are not "
                             "supported (use (?:...) groups)")
        if ord(c) > 0x7F and isinstance(regex, str):
            if in_class:
                raise ValueError(f"custom detector {name!r}: non-ASCII character {c!r} inside [...]; a bytes "
                                 "class matches single bytes (write an alternation instead)")
            out.append(b"(?:" + re.escape(c.encode()) + b")")
        else:
            out.append(c.encode("latin-1"))
        i += 1
    body = b"".join(out)
    if not flags:
        return body
    return b"(?" + flags.encode() + b":" + body + (b"\n)" if "x" in flags else b")")  # \n ends a verbose comment


def custom(name: str, regex: str | bytes, validator: Callable[[bytes], bool] | None = None,
           description: str = "") -> Detector:
    """A detector from a user's regex (a ``str`` is matched against the UTF-8 bytes of values).

    The regex is used as written: add ``\\b`` or lookarounds for boundaries. ``validator`` receives the matched
    bytes and confirms them. Raises ``ValueError`` for an invalid name or regex, or one that matches nothing
    (the empty string).
    """
    source = _to_bytes_pattern(name, regex)
    try:
        compiled = re.compile(source)
    except re.error as exc:
        raise ValueError(f"custom detector {name!r}: {exc}") from None
    if compiled.match(b"") is not None:
        raise ValueError(f"custom detector {name!r}: the regex matches the empty string")
    validate: Validate | None = None
    if validator is not None:
        check = validator
        validate = lambda b: len(b) if check(b) else 0  # noqa: E731
    return Detector(name, (Branch(source, Lead.FREE),), validate, description or f"custom: {regex!r}")


# --- the scanner ----------------------------------------------------------------------------------------------

_BOUNDARY = rb"[^0-9A-Za-z_]"
_ESCAPES = ((2, rb"[nrtbf](?<=\\[nrtbf])"), (6, rb"u(?<=\\u)[0-9A-Fa-f]{4}"))  # (bytes before the match, regex)
_CONTINUATION = bytes(range(0x80, 0xC0))


def _compile(items: Sequence[tuple[int, Branch]]) -> tuple[bytes, dict[int, tuple[int, int]]]:
    """The regex of some branches, and for each marker group: (branch index, where the match starts).

    FREE branches come first, as they are; then one boundary byte and the other branches, and those branches
    again after each kind of JSON escape. The start is a number of bytes after the regex match's start, or -1 for
    an e-mail address (found backwards from the @).
    """
    parts: list[bytes] = []
    groups: dict[int, tuple[int, int]] = {}
    group = 0

    def alternatives(chosen: Sequence[tuple[int, Branch]], skip: int) -> bytes:
        nonlocal group
        out = []
        for i, br in chosen:
            group += re.compile(br.source).groups + 1
            groups[group] = (i, -1 if br.lead is Lead.LOCAL else skip)
            out.append(b"(?:" + br.source + b")()")
        return b"|".join(out)

    for i, br in items:
        if br.lead is Lead.FREE:
            parts.append(alternatives([(i, br)], 0))
    bounded = [(i, br) for i, br in items if br.lead is not Lead.FREE]
    if bounded:
        inner = [alternatives(bounded, 1)]
        after = [(i, br) for i, br in bounded if br.lead is Lead.AFTER]
        if after:
            inner += [escape + b"(?:" + alternatives(after, skip) + b")" for skip, escape in _ESCAPES]
        parts.append(_BOUNDARY + b"(?:" + b"|".join(inner) + b")")
    return b"|".join(parts), groups


class Scanner:
    """One compiled regex for a chosen set of detectors, and the loop that validates what it finds.

    Order at one position: custom detectors first (a custom match starting at a byte beats a built-in one
    starting after it), then built-ins in the scanner's order. The first branch that matches there *and*
    validates wins; matches never overlap; scanning resumes after each match.

    Immutable and safe to share between threads. Building one compiles its regexes (about 15 ms for all
    thirteen built-ins): build it once per set of detectors, not per value.
    """

    __slots__ = ("_alone", "_free", "_groups", "_info", "_search", "detectors", "prefilter")

    def __init__(self, detectors: Iterable[Detector | str]) -> None:
        chosen: list[Detector] = []
        for d in detectors:
            det = BUILTIN_DETECTORS[d] if isinstance(d, str) else d
            if any(c.name == det.name for c in chosen):
                raise ValueError(f"detector {det.name!r} chosen twice")
            chosen.append(det)
        if not chosen:
            raise ValueError("a scanner needs at least one detector")
        self.detectors: tuple[Detector, ...] = tuple(chosen)
        self.prefilter = Prefilter(chosen)
        ordered = [(d, b) for d in chosen for b in d.branches if b.lead is Lead.FREE]
        ordered += [(d, b) for d in chosen for b in d.branches if b.lead is not Lead.FREE]
        # per branch: detector name, validator, bytes it may not follow, whether its matches need widening
        self._info = [(d.name, d.validate, b.not_after, b.lead is Lead.FREE) for d, b in ordered]
        # a custom pattern can look past the end of a value ($, \Z, lookaheads), where a joined buffer has a NUL
        self._free = any(b.lead is Lead.FREE for _, b in ordered)
        source, self._groups = _compile(list(enumerate(b for _, b in ordered)))
        self._search = re.compile(source).search
        # Each branch alone, to re-try a position where the first candidate was refused.
        self._alone: list[tuple[re.Pattern[bytes], dict[int, tuple[int, int]]]] = []
        for i, (_, branch) in enumerate(ordered):
            alone, alone_groups = _compile([(i, branch)])
            self._alone.append((re.compile(alone), alone_groups))

    @classmethod
    def builtin(cls, *names: str) -> Scanner:
        """A scanner of the named built-in detectors (all of them when none is named)."""
        return cls(names or BUILTIN_DETECTORS)

    def may_match(self, buf: bytes | bytearray | memoryview) -> bool:
        """False only when no part of ``buf`` holds a match (see :class:`Prefilter`); fast, and blind to what
        surrounds the values, so it can clear a whole run of DataRows at once."""
        return self.prefilter.may_match(buf)

    def search_any(self, buf: bytes) -> bool:
        """Is there any validated match in ``buf``? One regex search when there is no candidate at all."""
        data = b"\x00" + buf
        if self._search(data) is None:
            return False
        return bool(self._find(data, -1, 1))

    def find(self, buf: bytes, start: int = 0, end: int | None = None) -> list[Match]:
        """Validated, non-overlapping matches in ``buf[start:end]``, in order.

        ``buf[start:end]`` is scanned as a whole value: the bytes around it (a length header in a DataRow) are
        not seen. Offsets in the result are offsets in ``buf``.
        """
        if not start and (end is None or end == len(buf)):
            return self._find(b"\x00" + buf, -1)
        return self._find(b"\x00" + memoryview(buf)[start:end], start - 1)

    def find_many(self, values: Sequence[bytes]) -> list[tuple[int, Match]]:
        """Matches in many values with one scan: ``(index of the value, match with offsets in that value)``.

        The values are joined with NUL bytes, which no built-in pattern crosses and PostgreSQL text values never
        hold. If a value holds a NUL, or a custom pattern matched across one, each value is scanned on its own.
        """
        if self._free:  # each value on its own, as find() sees it
            return self._each(values)
        data = b"\x00".join([b"", *values])
        if data.count(0) != len(values):
            return self._each(values)
        out: list[tuple[int, Match]] = []
        index, last = -1, 0
        for s, e, name in self._find(data, 0):
            if data.find(0, s, e) >= 0:
                return self._each(values)
            index += data.count(0, last, s)
            last = s
            base = data.rfind(0, 0, s) + 1
            out.append((index, Match(s - base, e - base, name)))
        return out

    def _each(self, values: Sequence[bytes]) -> list[tuple[int, Match]]:
        return [(i, m) for i, v in enumerate(values) for m in self.find(v)]

    def _find(self, data: bytes, shift: int, limit: int = 0) -> list[Match]:
        """Matches in ``data``, whose first byte is a NUL put there by the caller (not part of any value), with
        ``shift`` added to their offsets."""
        search, groups, info = self._search, self._groups, self._info
        out: list[Match] = []
        floor = 1  # no match may start before this: the end of the previous one
        pos = 0
        while True:
            m = search(data, pos)
            if m is None:
                return out
            i, skip = groups[m.lastindex or 0]
            name, validate, not_after, free = info[i]
            at, e = m.span()
            # skip: bytes from the regex match's start (a FREE match may begin with the NUL put before the value)
            s = (at + skip or 1) if skip >= 0 else _local_start(data, at, floor)
            if s < floor or e <= s or (skip == 1 and data[s - 1] in not_after):
                s = e = 0
            elif validate is not None:
                n = validate(data[s:e])
                e = s + n if n else 0
            if e <= s:  # refused: a later branch may match at this position
                s, e, i = self._retry(data, at, i, floor)
                if e <= s:
                    pos = at + 1
                    continue
                name, validate, not_after, free = info[i]
            if free:
                s, e = _whole_chars(data, s, e)
            out.append(Match(s + shift, e + shift, name))
            if len(out) == limit:
                return out
            floor = e
            pos = e - 1 if data[e - 1] not in _WORD else e  # the match's last byte may be the next one's boundary

    def _retry(self, data: bytes, at: int, i: int, floor: int) -> tuple[int, int, int]:
        """The first branch after ``i`` that matches at scan position ``at`` and validates: (start, end, branch);
        end <= start when none does."""
        for j in range(i + 1, len(self._alone)):
            pattern, groups = self._alone[j]
            m = pattern.match(data, at)
            if m is None:
                continue
            _, validate, not_after, _ = self._info[j]
            skip = groups[m.lastindex or 0][1]
            s = (at + skip or 1) if skip >= 0 else _local_start(data, at, floor)
            e = m.end()
            if s < floor or e <= s or (skip == 1 and data[s - 1] in not_after):
                continue
            if validate is not None:
                n = validate(data[s:e])
                e = s + n if n else 0
            if e > s:
                return s, e, j
        return 0, 0, i


_WORD = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def _whole_chars(data: bytes, s: int, e: int) -> tuple[int, int]:
    """Widen ``[s, e)`` so that it neither starts nor ends inside a UTF-8 sequence."""
    while s > 1 and data[s] in _CONTINUATION:
        s -= 1
    while e < len(data) and data[e] in _CONTINUATION:
        e += 1
    return s, e
