"""Types of the C extension ``wardgate.masking._bulk`` (source: ``_bulk.c`` beside this file).

The loops of :mod:`wardgate.masking.bulk` that run once per row, in one call per column of a run of rows. The
Python bodies there (``partial_many_py``, ``candidates_py``, ``whole_kinds_py``, ``partial_kinds_py``) are the
specification (``whole_kinds`` may answer ``UNSURE`` where ``whole_kinds_py`` answers a kind, never otherwise).
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

def whole_kinds(
    buf: bytes | bytearray | memoryview, starts: Sequence[int], ends: Sequence[int], detectors: int, skip: int, /
) -> list[int]:
    """``bulk.whole_kinds_py`` or ``UNSURE`` (-2), per value ``buf[starts[i] + skip : ends[i]]`` (``starts[i] < 0``:
    NULL, -2): ``k`` when the scanner over the built-in detectors whose bits are set in ``detectors`` (bit ``i`` is
    ``ORDER[i]``) finds exactly one match, the whole value, of detector ``ORDER[k]``, in whatever order the scanner
    lists them; -2 otherwise, or when the C is not sure. Recognises e-mail addresses, card, SSN and phone numbers
    and IPv4 addresses of printable ASCII alone in their value. Raises ``ValueError`` when a value is not within
    ``buf``, the lists differ in length, ``skip < 0`` or ``detectors`` has a bit beyond the built-in detectors."""

def partial_kinds(
    buf: bytearray | memoryview, starts: Sequence[int], ends: Sequence[int], kinds: Sequence[int], skip: int, /
) -> None:
    """``bulk.partial_kinds_py``: each value ``buf[starts[i] + skip : ends[i]]`` (``starts[i] >= 0``) of
    ``kinds[i] >= 0`` becomes ``maskers.PARTIAL.get(ORDER[kinds[i]], keep_ends)(value)``, in place (``buf`` must be
    writable); a value shorter than ``skip`` is left alone. Raises ``ValueError``, before writing anything, when a
    value is not within ``buf``, the lists differ in length, ``skip < 0`` or a kind is beyond the built-in
    detectors."""
