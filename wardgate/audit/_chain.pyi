"""Types of the C extension ``wardgate.audit._chain`` (source: ``_chain.c`` beside this file, which says which
values it writes and why).

The canonical JSON of a positional audit record (:mod:`wardgate.audit.chain`).
"""

def insert_text(table: str, values: tuple[object, ...], at: int, replacement: object, /) -> str | None:
    """``chain.canonical(table, None, values)`` with ``values[at]`` replaced by ``replacement`` (when ``at`` >= 0),
    or None when a value is not an exact str, int (int64), finite float, bool or None."""
