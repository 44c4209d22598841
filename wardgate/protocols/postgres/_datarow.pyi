"""Types of the C extension ``wardgate.protocols.postgres._datarow`` (source: ``_datarow.c`` beside this file).

:func:`wardgate.protocols.postgres.decode.data_row_walk` (its specification) in one call.
"""

from collections.abc import Sequence

def walk(buf: bytes | bytearray | memoryview, columns: Sequence[int], /) -> tuple[list[int], list[int]]:
    """For a run of DataRow messages filling ``buf`` exactly: ``[row_start, row_end, ...]``, and for each row and
    each index in ``columns`` (in that order) the value's start and end in ``buf`` (-1, -1 for NULL). Raises
    ``ValueError`` when the run is malformed or a row has no value at a chosen index (negative included)."""
