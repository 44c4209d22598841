"""Result samples: the first rows of each result as the client received them, kept for session replay.

The gateway keeps a sample after masking, from the very bytes it sends, so a replay shows exactly what the
client saw and an unmasked value can never reach the audit. Capture is on the relay's hot path, so it does as
little as it can there: it slices at most ``rows`` rows per statement into tuples of raw values, each cut to
``value_bytes``, and journals them with the result's RowDescription frame as it came. Turning wire values into
text (binary formats included) happens in the shipper process, off the relay, where ``stored`` makes the JSON
the store keeps (and the hash chain covers).
"""

from __future__ import annotations

import json
import struct
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ..protocols.postgres import decode
from ..protocols.postgres.framing import ProtocolViolation
from ..store.db import INSERT_COLUMNS, Write

# A journaled sample: (RowDescription frame or None, rows of raw values, values cut, rows the result had).
Journaled = tuple[bytes | None, tuple[tuple[bytes | None, ...], ...], int, int]


@dataclass(slots=True)
class Kept:
    """The sample a statement is collecting while its rows go by."""

    description: bytes | None  # the RowDescription the client was sent (None: it never asked for one)
    rows: list[tuple[bytes | None, ...]] = field(default_factory=list)
    cut: int = 0  # values longer than the bound, kept cut

    def take(self, run: bytes, count: int, limit: int, value_bytes: int) -> None:
        """Keep the first rows of ``run`` (``count`` DataRows, already masked) until ``limit`` are kept."""
        room = limit - len(self.rows)
        pos = 0
        for _ in range(min(room, count)):
            spans, end = decode.data_row_spans(run, pos)
            row: list[bytes | None] = []
            for s in spans:
                if s is None:
                    row.append(None)
                elif s[1] - s[0] > value_bytes:
                    row.append(run[s[0] : s[0] + value_bytes])
                    self.cut += 1
                else:
                    row.append(run[s[0] : s[1]])
            self.rows.append(tuple(row))
            pos = end

    def journaled(self, total_rows: int | None) -> Journaled:
        return self.description, tuple(self.rows), self.cut, total_rows if total_rows is not None else -1


# --- the shipper's side: wire values to text ------------------------------------------------------------------

_EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
_TEXT_TYPES = frozenset({25, 1043, 1042, 19, 18, 114, 142, 705, 3614, 3615})  # text-like and json
_INT = {21: struct.Struct("!h"), 23: struct.Struct("!i"), 20: struct.Struct("!q"), 26: struct.Struct("!I")}
_FLOAT = {700: struct.Struct("!f"), 701: struct.Struct("!d")}
_Q = struct.Struct("!q")
_I = struct.Struct("!i")


def _binary(type_oid: int, raw: bytes) -> str:
    """A binary-format value as psql would print it, for the common types; hex (``\\x...``) for the rest."""
    try:
        if type_oid in _TEXT_TYPES:
            return raw.decode("utf-8", "replace")
        if type_oid == 3802 and raw[:1] == b"\x01":  # jsonb: a version byte, then the text
            return raw[1:].decode("utf-8", "replace")
        if type_oid in _INT:
            return str(_INT[type_oid].unpack(raw)[0])
        if type_oid in _FLOAT:
            return repr(_FLOAT[type_oid].unpack(raw)[0])
        if type_oid == 16 and len(raw) == 1:
            return "t" if raw[0] else "f"
        if type_oid == 2950 and len(raw) == 16:
            return str(uuid.UUID(bytes=raw))
        if type_oid in (1114, 1184):  # microseconds since 2000-01-01
            at = _EPOCH_2000 + timedelta(microseconds=_Q.unpack(raw)[0])
            return at.isoformat(sep=" ") if type_oid == 1184 else at.replace(tzinfo=None).isoformat(sep=" ")
        if type_oid == 1082:
            return (_EPOCH_2000 + timedelta(days=_I.unpack(raw)[0])).date().isoformat()
    except (struct.error, OverflowError, ValueError):
        pass
    return "\\x" + raw.hex()


def _unknown(raw: bytes) -> str:
    """A value whose format the gateway never saw described: text when it reads as text, else hex."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "\\x" + raw.hex()
    return text if text.isprintable() else "\\x" + raw.hex()


def stored(value: Journaled | None) -> str | None:
    """The JSON the store keeps for a journaled sample: columns (name, type OID, format) and rows of text."""
    if value is None:
        return None
    description, rows, cut, total = value
    columns: list[dict[str, Any]] = []
    if description is not None:
        try:
            fields = decode.row_description(description)
        except ProtocolViolation:  # a description the codec refuses still leaves the rows readable
            fields = ()
        columns = [{"name": f.name, "type": f.type_oid, "format": f.format} for f in fields]
    width = max((len(r) for r in rows), default=len(columns))
    if len(columns) != width:
        columns = [{"name": f"?column{i + 1}?", "type": 0, "format": -1} for i in range(width)]
    out_rows = []
    for row in rows:
        out: list[str | None] = []
        for col, raw in zip(columns, row, strict=False):
            if raw is None:
                out.append(None)
            elif col["format"] == 0:
                out.append(raw.decode("utf-8", "replace"))
            elif col["format"] == 1:
                out.append(_binary(col["type"], raw))
            else:
                out.append(_unknown(raw))
        out_rows.append(out)
    doc: dict[str, Any] = {"columns": columns, "rows": out_rows}
    if total >= 0:
        doc["total"] = total
    if cut:
        doc["cut"] = cut
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def prepare(writes: list[Write]) -> list[Write]:
    """Replace each journaled sample among ``writes`` with its stored JSON (in place; returns ``writes``)."""
    for i, w in enumerate(writes):
        if w.table == "statements" and isinstance(w.values, tuple) and len(w.values) > _SAMPLE_AT:
            sample = w.values[_SAMPLE_AT]
            if sample is not None and not isinstance(sample, str):
                values = list(w.values)
                values[_SAMPLE_AT] = stored(sample)
                writes[i] = replace(w, values=tuple(values))
    return writes


_SAMPLE_AT = INSERT_COLUMNS["statements"].index("result_sample")
