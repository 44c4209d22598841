"""Types of the C extension ``wardgate.masking._bulk`` (source: ``_bulk.c`` beside this file).

The loops of :mod:`wardgate.masking.bulk` that run once per row, in one call per column of a run of rows. The
Python bodies there (``partial_many_py``, ``candidates_py``) are the specification.
"""

from collections.abc import Sequence

def partial_many(buf: bytearray | memoryview, starts: Sequence[int], ends: Sequence[int], /) -> int:
    """Each value ``buf[starts[i]:ends[i]]`` (``starts[i] < 0``: NULL, skipped) becomes
    ``mask_whole(value, Style.PARTIAL, b"")``, in place (``buf`` must be writable); returns how many values were
    masked. Raises ``ValueError``, before writing anything, when a value is not within ``buf`` or the lists differ
    in length."""

def candidates(
    buf: bytes | bytearray | memoryview, starts: Sequence[int], ends: Sequence[int], detectors: int, skip: int, /
) -> list[int]:
    """The indices ``i``, ascending, of the values (``starts[i] >= 0``) for which
    ``_prefilter.may_match(buf[starts[i] + skip : ends[i]], detectors)`` is True. Raises ``ValueError`` when a
    value is not within ``buf``, the lists differ in length, ``skip < 0`` or ``detectors`` has a bit beyond the
    built-in detectors."""
