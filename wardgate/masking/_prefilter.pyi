"""Types of the C extension ``wardgate.masking._prefilter`` (source: ``_prefilter.c`` beside this file).

It answers what :meth:`wardgate.masking.detectors.Prefilter.may_match` answers for built-in detectors, in one pass
over the buffer instead of several regex and substring passes over it and a translated copy of it.
"""

from typing import Final

#: The built-in detector names in bit order: bit ``i`` of ``detectors`` chooses ``ORDER[i]``. It is the order of
#: ``BUILTIN_DETECTORS``, so that a caller maps names to bits with ``ORDER.index(name)``.
ORDER: Final[tuple[str, ...]]

def may_match(buf: bytes | bytearray | memoryview, detectors: int, /) -> bool:
    """True iff ``Prefilter([BUILTIN_DETECTORS[n] for n in chosen]).may_match(buf)`` would be, where ``chosen`` are
    the names of the bits set in ``detectors`` (False when none is). ``buf`` must be C-contiguous; it is read in
    place, without the GIL from 64 KiB on. Raises ``ValueError`` for bits beyond ``len(ORDER)``."""
