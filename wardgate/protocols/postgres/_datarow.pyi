"""Types of the C extension ``wardgate.protocols.postgres._datarow`` (source: ``_datarow.c`` beside this file).

:func:`wardgate.protocols.postgres.decode.data_row_walk` (its specification) in one call.
"""

from collections.abc import Sequence

def walk(buf: bytes | bytearray | memoryview, columns: Sequence[int], /) -> tuple[list[int], list[int]]:
    """For a run of DataRow messages filling ``buf`` exactly: ``[row_start, row_end, ...]``, and for each row and
    each index in ``columns`` (in that order) the value's start and end in ``buf`` (-1, -1 for NULL). Raises
    ``ValueError`` when the run is malformed or a row has no value at a chosen index (negative included)."""

def may_match(buf: bytes | bytearray | memoryview, columns: Sequence[int], skips: Sequence[int], detectors: int,
              /) -> bool:
    """:func:`wardgate.protocols.postgres.decode.data_rows_may_match` with the masking prefilter of the built-in
    detectors whose bits are set in ``detectors`` (as ``wardgate.masking._prefilter.may_match`` takes them) as
    its test. Raises ``ValueError`` for a malformed row read on the way, a chosen index a row lacks, a skip
    outside 0-32767, ``len(skips) != len(columns)``, or ``detectors`` not a non-empty set of those bits."""

def isa() -> str:
    """Which row test ``may_match`` runs on this CPU: ``"avx512"``, ``"avx2"`` or ``"portable"`` (every value
    scanned), after the cap of ``WARDGATE_PREFILTER_ISA`` (``avx2``, ``portable``) in the environment."""
