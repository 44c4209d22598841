"""Masking work over many values of one buffer at once: the loops that run once per row.

Each function takes the values as two lists of offsets into the buffer, ``starts`` and ``ends`` (a start below 0
is a NULL, skipped). The Python bodies here are the specification; the C extension ``_bulk`` (built with the
package) does the same in one call per batch, and tests hold it to these.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from .detectors import BUILTIN_DETECTORS, Prefilter, Scanner
from .maskers import PARTIAL, Style, keep_ends, mask_whole

_native: ModuleType | None
try:
    from . import _bulk as _native
except ImportError:  # not built: the Python bodies below do the work
    _native = None


def partial_many_py(buf: bytearray, starts: Sequence[int], ends: Sequence[int]) -> int:
    """Mask each value whole in the partial style, in place (partial masks keep every value's length); returns
    how many values were masked."""
    n = 0
    for s, e in zip(starts, ends, strict=True):
        if s < 0:
            continue
        masked = mask_whole(bytes(buf[s:e]), Style.PARTIAL, b"")
        assert masked is not None and len(masked) == e - s
        buf[s:e] = masked
        n += 1
    return n


def candidates_py(buf: bytes, starts: Sequence[int], ends: Sequence[int], prefilter: Prefilter,
                  skip: int = 0) -> list[int]:
    """The indices of the values (after their first ``skip`` bytes) in which a detector may match."""
    view = memoryview(buf)
    return [i for i, (s, e) in enumerate(zip(starts, ends, strict=True))
            if s >= 0 and prefilter.may_match(view[s + skip : e])]


def partial_many(buf: bytearray, starts: Sequence[int], ends: Sequence[int]) -> int:
    if _native is not None:
        return int(_native.partial_many(buf, starts, ends))
    return partial_many_py(buf, starts, ends)


def candidates(buf: bytes, starts: Sequence[int], ends: Sequence[int], prefilter: Prefilter,
               skip: int = 0) -> list[int]:
    bits = prefilter.native_bits
    if _native is not None and bits:
        return list(_native.candidates(buf, starts, ends, bits, skip))
    return candidates_py(buf, starts, ends, prefilter, skip)


#: The built-in detectors in the order of the C modules' bit sets and kind numbers (= BUILTIN_DETECTORS' order).
ORDER: tuple[str, ...] = tuple(BUILTIN_DETECTORS)
UNSURE = -2


def whole_kinds_py(buf: bytes, starts: Sequence[int], ends: Sequence[int], scanner: Scanner,
                   skip: int = 0) -> list[int]:
    """For each value (after its first ``skip`` bytes): the index in :data:`ORDER` of the built-in detector whose
    one match is the whole value (``scanner.find(value) == [Match(0, len(value), ORDER[k])]``), else
    :data:`UNSURE`. The C version may answer UNSURE where this answers k, never anything else: it takes the
    common shapes (an e-mail address, a card number, a phone number... alone in a value) off the Python scanner,
    and leaves everything else to it."""
    out = []
    for s, e in zip(starts, ends, strict=True):
        if s < 0:
            out.append(UNSURE)
            continue
        value = buf[s + skip : e]
        found = scanner.find(value)
        if len(found) == 1 and found[0].start == 0 and found[0].end == len(value):
            out.append(ORDER.index(found[0].detector))
        else:
            out.append(UNSURE)
    return out


def partial_kinds_py(buf: bytearray, starts: Sequence[int], ends: Sequence[int], kinds: Sequence[int],
                     skip: int = 0) -> None:
    """Mask each value (after ``skip`` bytes) whole, in place, in the partial style of detector ``ORDER[kind]``
    (:data:`maskers.PARTIAL`, first and last character for the others); values of kind < 0 are left alone."""
    for s, e, k in zip(starts, ends, kinds, strict=True):
        if s < 0 or k < 0 or e - s < skip:
            continue
        masked = PARTIAL.get(ORDER[k], keep_ends)(bytes(buf[s + skip : e]))
        assert len(masked) == e - s - skip
        buf[s + skip : e] = masked


def whole_kinds(buf: bytes, starts: Sequence[int], ends: Sequence[int], prefilter: Prefilter,
                skip: int = 0) -> list[int] | None:
    """:func:`whole_kinds_py` in C; None when the C is not there (or the detectors are not all built-in): the
    Python scanner then does all the work, as it would do the same work here."""
    bits = prefilter.native_bits
    if _native is None or not bits or not hasattr(_native, "whole_kinds"):
        return None
    return list(_native.whole_kinds(buf, starts, ends, bits, skip))


def partial_kinds(buf: bytearray, starts: Sequence[int], ends: Sequence[int], kinds: Sequence[int],
                  skip: int = 0) -> None:
    if _native is not None and hasattr(_native, "partial_kinds"):
        _native.partial_kinds(buf, starts, ends, kinds, skip)
    else:
        partial_kinds_py(buf, starts, ends, kinds, skip)
