"""Masking work over many values of one buffer at once: the loops that run once per row.

Each function takes the values as two lists of offsets into the buffer, ``starts`` and ``ends`` (a start below 0
is a NULL, skipped). The Python bodies here are the specification; the C extension ``_bulk`` (built with the
package) does the same in one call per batch, and tests hold it to these.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from .detectors import Prefilter
from .maskers import Style, mask_whole

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
