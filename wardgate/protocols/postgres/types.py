"""What a result column's values look like on the wire, by type OID and format: what masking needs to know.

Kinds (the names masking uses):

``text``          text a client reads as a string, in either format (text, varchar, char(n), name, unknown);
                  user-defined types (OID >= 16384: citext, enums, domains) in text format too.
``structured``    text with a syntax of its own (json, xml, arrays of text types, records, tsvector): a detector's
                  mask fits inside it, a whole-value mask would break it.
``jsonb_binary``  jsonb in binary format: a version byte, then the JSON text.
``opaque``        binary layouts of their own (arrays, records, user-defined types in binary format).
``not_text``      everything else (numbers, dates, uuid, inet, bytea, arrays of those): no text to scan, and a
                  mask would not parse as the type.
"""

from __future__ import annotations

TEXT_TYPES = frozenset({25, 1043, 1042, 19, 705, 1790})  # text varchar bpchar name unknown refcursor
STRUCTURED_TYPES = frozenset({
    114, 142, 3802, 2249, 4072, 3614,  # json xml jsonb record jsonpath tsvector
    1009, 1015, 1014, 1003, 199, 3807, 143, 2287, 4073, 3643,  # arrays of text types, json, xml, records...
})
JSONB = 3802
FIRST_USER_OID = 16384


def column_kind(type_oid: int, binary: bool) -> str:
    if type_oid in TEXT_TYPES:
        return "text"
    if type_oid >= FIRST_USER_OID:
        return "opaque" if binary else "text"
    if type_oid in STRUCTURED_TYPES:
        if not binary:
            return "structured"
        if type_oid == JSONB:
            return "jsonb_binary"
        return "structured" if type_oid in (114, 142) else "opaque"  # json and xml are sent as their text
    return "not_text"
