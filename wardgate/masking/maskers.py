"""Maskers: what a detected value becomes. Bytes in, bytes (or None for SQL NULL) out.

Styles, and what they do to the length of a value in bytes (the gateway rewrites a DataRow in place when no
length changes, and re-frames it otherwise):

``partial``  keeps the shape: each masked **byte** becomes one ``*`` (a two-byte ``ë`` becomes ``**``), kept
             characters are kept whole, so the result is valid UTF-8 whenever the input was. **Always
             length-preserving**, for every detector, built-in or custom.
``full``     a fixed token naming the detector, ``[redacted:email]``. Length changes.
``hash``     ``h:`` and 16 hex digits of HMAC-SHA256 under the caller's key, so equal values give equal tokens
             (joins and GROUP BY still work) and nobody without the key can test guesses. Length changes.
``null``     the value becomes SQL NULL (``None``); in free text, any match makes the whole value NULL.

A masked built-in match never matches a built-in detector again: partial masks keep no run of digits, hex or
letters long enough for any pattern, and tokens are shaped not to match (the property tests check it). Masking
can still uncover a neighbour that was glued to a match; :func:`mask_text` masks until its scanner finds nothing.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from functools import lru_cache

from .detectors import Match, Scanner


class Style(StrEnum):
    PARTIAL = "partial"
    FULL = "full"
    HASH = "hash"
    NULL = "null"

    @property
    def preserves_length(self) -> bool:
        """Does masking in this style keep every value's length in bytes? True for ``partial`` only, and then for
        every detector: stars replace bytes one for one."""
        return self is Style.PARTIAL


_CONTINUATION = bytes(range(0x80, 0xC0))


@lru_cache(maxsize=64)
def _table(keep: bytes) -> bytes:
    """A translate table: the bytes in ``keep`` stay, every other byte becomes ``*``."""
    table = bytearray(b"*" * 256)
    for b in keep:
        table[b] = b
    return bytes(table)


def _char_len(v: bytes, i: int) -> int:
    """Length of the UTF-8 character starting at ``v[i]`` (1 for a stray byte of invalid UTF-8)."""
    lead = v[i]
    n = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    for k in range(1, n):
        if i + k >= len(v) or not 0x80 <= v[i + k] < 0xC0:
            return 1
    return n


def _last_char_start(v: bytes) -> int:
    i = len(v) - 1
    while i > 0 and 0x80 <= v[i] < 0xC0 and len(v) - i < 4:
        i -= 1
    return i if _char_len(v, i) == len(v) - i else len(v) - 1


def keep_ends(v: bytes, keep: bytes = b"") -> bytes:
    """First and last character kept, the bytes between become ``*`` except those in ``keep`` (separators that
    give the value its shape). With fewer than 5 characters to hide (not counting separators), none is kept."""
    table = _table(keep)
    if len(v) < 5 or len(v.translate(None, keep + _CONTINUATION)) < 5:
        return v.translate(table)
    head = _char_len(v, 0)
    tail = _last_char_start(v)
    if tail < head:
        return v.translate(table)
    return v[:head] + v[head:tail].translate(table) + v[tail:]


def _keep_last_digits(v: bytes, n: int, table: bytes) -> bytes:
    """Every byte masked through ``table``, except the last ``n`` ASCII digits."""
    out = bytearray(v.translate(table))
    i = len(v)
    while n and i:
        i -= 1
        if 0x30 <= v[i] <= 0x39:
            out[i] = v[i]
            n -= 1
    return bytes(out)


_CARD_KEEP = _table(b" -")
_PHONE_KEEP = _table(b" -.()+")


#: What partial_email keeps after the domain: a top-level domain, nothing else.
_TLD = re.compile(rb"\.(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59})")


def partial_email(v: bytes) -> bytes:
    """``jane.doe@mail.example.com`` -> ``j*******@************.com``: the first character of the local part,
    the ``@`` and the top-level domain stay."""
    at = v.rfind(b"@")
    if at <= 0:
        return keep_ends(v)
    dot = v.rfind(b".", at)
    if dot < 0 or not _TLD.fullmatch(v, dot):  # whatever follows the address is masked too
        dot = len(v)
    head = _char_len(v, 0)
    return v[:head] + b"*" * (at - head) + b"@" + b"*" * (dot - at - 1) + v[dot:]


def partial_card(v: bytes) -> bytes:
    """``4111 1111 1111 1111`` -> ``**** **** **** 1111``: separators and the last 4 digits stay."""
    return _keep_last_digits(v, 4, _CARD_KEEP)


def partial_phone(v: bytes) -> bytes:
    """``+1 (555) 123-4567`` -> ``+* (***) ***-**67``: punctuation and the last 2 digits stay."""
    return _keep_last_digits(v, 2, _PHONE_KEEP)


def _keep(separators: bytes) -> Callable[[bytes], bytes]:
    return lambda v: keep_ends(v, separators)


#: The partial mask of each built-in detector; any other (custom) detector keeps its first and last character.
PARTIAL: dict[str, Callable[[bytes], bytes]] = {
    "email": partial_email,
    "credit_card": partial_card,
    "phone": partial_phone,
    "ssn": _keep(b"- "),  # 123-45-6789 -> 1**-**-***9
    "ipv4": _keep(b"."),  # 192.168.1.1 -> 1**.***.*.1
    "iban": _keep(b" "),  # DE89 3704 ... 00 -> D*** **** ... *0
    "jwt": _keep(b"."),
    "pem_private_key": _keep(b"\r\n"),  # the BEGIN line loses its dashes: it no longer reads as a key
}


def _digits(v: bytes) -> bytes:
    return v.translate(None, b" -.()")


#: How a value is normalised before it is hashed, so that the same thing written two ways gives one token.
NORMALISE: dict[str, Callable[[bytes], bytes]] = {
    "email": bytes.lower,  # ASCII only: the domain is case-insensitive, and so are local parts in practice
    "credit_card": _digits,
    "phone": _digits,
    "ssn": _digits,
    "iban": lambda v: v.translate(None, b" ").upper(),
}


def full_token(detector: str) -> bytes:
    """``[redacted:email]``: says what was there, not how long it was; no quote, backslash, comma or brace, so
    it is safe inside JSON strings and array literals."""
    return b"[redacted:" + detector.encode() + b"]"


def hash_token(value: bytes, detector: str, key: bytes) -> bytes:
    """``h:`` and the first 16 hex digits of HMAC-SHA256(key, normalised value).

    The key must be secret and non-empty: an unkeyed hash of a phone number or SSN is reversed by trying them
    all. Sixteen digits with no letter (1 token in 1,800) would read as a card number; such a token's first digit
    is replaced by ``f``, which keeps it deterministic.
    """
    if not key:
        raise ValueError("the hash style needs a non-empty secret key")
    norm = NORMALISE.get(detector)
    digest = hmac.digest(key, norm(value) if norm else value, "sha256")[:8].hex()
    if digest.isdigit():
        digest = "f" + digest[1:]
    return b"h:" + digest.encode()


def _style(style: Style | str) -> Style:
    return style if type(style) is Style else Style(style)


def mask(value: bytes, detector: str, style: Style | str, key: bytes = b"") -> bytes | None:
    """Mask a whole value known to be of kind ``detector`` (a masked column, or one match)."""
    style = _style(style)
    if style is Style.PARTIAL:
        return PARTIAL.get(detector, keep_ends)(value)
    if style is Style.FULL:
        return full_token(detector)
    if style is Style.HASH:
        return hash_token(value, detector, key)
    return None


Styles = Style | str | Mapping[str, Style]  # one style, or a style per detector name


def _styler(style: Styles) -> Callable[[str], Style]:
    if isinstance(style, Mapping):
        return style.__getitem__
    one = _style(style)
    return lambda _detector: one


def mask_matches(value: bytes, matches: Iterable[Match], style: Styles, key: bytes = b"") -> bytes:
    """Replace each match (non-overlapping, in order) by its mask in ``style`` (one style, or one per detector
    name); every other byte stays. One round: see :func:`mask_text` for why a second can be needed. ``null``
    makes nothing to insert: use ``mask_text``."""
    style_of = _styler(style)
    pieces: list[bytes] = []
    pos = 0
    for start, end, detector in matches:
        st = style_of(detector)
        if st is Style.HASH and not key:
            raise ValueError("the hash style needs a non-empty secret key")
        pieces.append(value[pos:start])
        pieces.append(mask(value[start:end], detector, st, key) or b"")
        pos = end
    pieces.append(value[pos:])
    return b"".join(pieces)


#: Rounds of :func:`mask_text` before it gives up and returns NULL. Partial masking always settles (each round
#: turns more bytes into stars, which no detector matches); two rounds are the most seen in practice.
ROUNDS = 8


def mask_text(value: bytes, scanner: Scanner, style: Styles, key: bytes = b"",
              matches: list[Match] | None = None) -> tuple[bytes | None, list[tuple[str, int]]]:
    """Mask every match of ``scanner`` inside a longer value (free text, JSON, an array literal), so that the
    scanner finds nothing in the result; every byte outside the matches stays as it was.

    Returns the masked value and how many matches of each detector were masked, in order of first appearance.
    A value with no match is returned as the same object with ``[]``. ``matches`` (from
    :meth:`Scanner.find_many`, say) saves the first scan. In the ``null`` style any match makes the value NULL.

    Masking can uncover a value that was hidden because it was glued to the match: in ``2001:db8::1jane@x.org``
    the address ``2001:db8::1`` is not one (a word character follows it) until the e-mail address becomes
    ``1***@*.org``. So the result is scanned again and masked again until nothing is found; those bytes, which the
    first scan did not report, are masked too. If that does not settle in :data:`ROUNDS`, the value becomes NULL.
    """
    style_of = _styler(style)
    found = scanner.find(value) if matches is None else matches
    if not found:
        return value, []
    counts: dict[str, int] = {}
    out = value
    for _ in range(ROUNDS):
        nulled = False
        for m in found:
            counts[m.detector] = counts.get(m.detector, 0) + 1
            nulled = nulled or style_of(m.detector) is Style.NULL
        if nulled:
            break
        out = mask_matches(out, found, style, key)
        found = scanner.find(out)
        if not found:
            return out, list(counts.items())
    return None, list(counts.items())


def _whole_kind(value: bytes) -> str | None:
    """The detector whose partial shape fits a whole marked value, judged by its shape alone (a marked column is
    masked whatever it holds, so nothing needs validating, and this runs for every value of the column)."""
    if b"@" in value:
        return "email"
    digits = value.translate(None, b" -.()+")
    if not digits.isdigit():
        return None
    n = len(digits)
    if value[:1] in (b"+", b"("):
        return "phone"
    if 13 <= n <= 19:
        return "credit_card"
    if n == 9 and len(value) == 11:
        return "ssn"
    if 10 <= n <= 12 and n < len(value):
        return "phone"
    return None


def mask_whole(value: bytes, style: Style, key: bytes) -> bytes | None:
    """A value of a marked column. ``partial`` keeps the shape of what it holds when a detector recognises the
    whole value (``j***@*******.com``), else its first and last characters; ``full`` and ``hash`` name the
    detector when one recognises it, else ``column``."""
    if style is Style.NULL:
        return None
    kind = _whole_kind(value)
    if style is Style.PARTIAL:
        return PARTIAL.get(kind, keep_ends)(value) if kind else keep_ends(value)
    if style is Style.FULL:
        return full_token(kind or "column")
    return hash_token(value, kind or "column", key)
