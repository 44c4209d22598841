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

from ..protocols.postgres import decode, encode
from ..protocols.postgres.framing import ProtocolViolation
from ..store.db import INSERT_COLUMNS, Write

# A journaled sample: (RowDescription frame or None, DataRow messages, rows in them, values cut, rows the result had).
Journaled = tuple[bytes | None, bytes, int, int, int]


@dataclass(slots=True)
class Kept:
    """The sample a statement is collecting while its rows go by: the first DataRow messages as sent."""

    description: bytes | None  # the RowDescription the client was sent (None: it never asked for one)
    runs: list[bytes] = field(default_factory=list)  # DataRow messages, whole, no value longer than the bound
    rows: int = 0
    cut: int = 0  # values longer than the bound, kept cut

    def take(self, run: bytes, count: int, limit: int, value_bytes: int) -> None:
        """Keep the first rows of ``run`` (``count`` DataRows, already masked) until ``limit`` are kept.

        A message no longer than ``value_bytes`` cannot hold a longer value, so such rows are kept as they are,
        by reference (a run of them in one piece); only a longer row is read, and re-encoded with its long
        values cut."""
        room = limit - self.rows
        if count <= room and len(run) <= value_bytes:
            self.runs.append(run)
            self.rows += count
            return
        pos = 0
        for _ in range(min(room, count)):
            end = pos + 1 + int.from_bytes(run[pos + 1 : pos + 5])
            if end - pos <= value_bytes:
                self.runs.append(run[pos:end])
            else:
                values = []
                for v in decode.data_row(run[pos:end]):
                    if v is not None and len(v) > value_bytes:
                        v = v[:value_bytes]  # noqa: PLW2901
                        self.cut += 1
                    values.append(v)
                self.runs.append(encode.data_row(values))
            self.rows += 1
            pos = end

    def journaled(self, total_rows: int | None) -> Journaled:
        return (self.description, b"".join(self.runs), self.rows, self.cut,
                total_rows if total_rows is not None else -1)


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


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # built once: json.dumps with
# options builds an encoder per call, which was a third of a sample's cost
_Columns = tuple[str, tuple[tuple[int, int], ...]]  # the columns' JSON, and each column's (type OID, format)
_columns_cache: dict[bytes | None, _Columns] = {}


def _columns(description: bytes | None) -> _Columns:
    """A description's columns, decoded once: a workload repeats the same few results."""
    cached = _columns_cache.get(description)
    if cached is not None:
        return cached
    fields: tuple[Any, ...] = ()
    if description is not None:
        try:
            fields = decode.row_description(description)
        except ProtocolViolation:  # a description the codec refuses still leaves the rows readable
            fields = ()
    doc = [{"name": f.name, "type": f.type_oid, "format": f.format} for f in fields]
    cached = (json.dumps(doc, separators=(",", ":"), ensure_ascii=False),
              tuple((f.type_oid, f.format) for f in fields))
    if len(_columns_cache) >= 1024:
        _columns_cache.clear()
    _columns_cache[description] = cached
    return cached


def _rows(data: bytes) -> list[tuple[bytes | None, ...]]:
    rows = []
    pos = 0
    try:
        while pos < len(data):
            spans, end = decode.data_row_spans(data, pos)
            rows.append(tuple(None if sp is None else data[sp[0] : sp[1]] for sp in spans))
            pos = end
    except ProtocolViolation:  # relayed as it came; what cannot be read is not shown
        pass
    return rows


def stored(value: Journaled | None) -> str | None:
    """The JSON the store keeps for a journaled sample: ``columns`` [{name, type, format}], ``rows`` of text,
    ``total`` rows of the result and ``cut`` values shortened (when known and not zero)."""
    if value is None:
        return None
    description, data, _, cut, total = value
    columns_json, kinds = _columns(description)
    rows = _rows(data)
    width = len(rows[0]) if rows else len(kinds)
    if len(kinds) != width:  # no description (or not this result's): unnamed columns, values read as they look
        kinds = ((0, -1),) * width
        columns_json = json.dumps([{"name": f"?column{i + 1}?", "type": 0, "format": -1} for i in range(width)],
                                  separators=(",", ":"))
    out_rows = []
    for row in rows:
        out: list[str | None] = []
        for (type_oid, fmt), raw in zip(kinds, row, strict=False):
            if raw is None:
                out.append(None)
            elif fmt == 0:
                out.append(raw.decode("utf-8", "replace"))
            elif fmt == 1:
                out.append(_binary(type_oid, raw))
            else:
                out.append(_unknown(raw))
        out_rows.append(out)
    tail = (f',"total":{total}' if total >= 0 else "") + (f',"cut":{cut}' if cut else "")
    return '{"columns":' + columns_json + ',"rows":' + _encode(out_rows) + tail + "}"


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
