"""Result samples: the first rows of each result as the client received them, kept for session replay.

The gateway keeps a sample after masking, from the very bytes it sends, so a replay shows exactly what the
client saw and an unmasked value can never reach the audit. Capture is on the relay's hot path, so it does as
little as it can there: it keeps at most ``rows`` DataRow messages per statement (a value longer than
``value_bytes`` cut), and journals them with the result's RowDescription frame as it came. The shipper stores those
bytes as they are (``stored``: base64 in a small JSON, which the hash chain covers); turning them into text,
binary formats included, waits until a replay reads them (``readable``).
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..protocols.postgres import decode, encode
from ..protocols.postgres.framing import ProtocolViolation
from ..store.db import INSERT_COLUMNS, Write

# A journaled sample: (RowDescription frame or None, DataRow messages, rows in them, values cut, rows the result had).
Journaled = tuple[bytes | None, bytes, int, int, int]


@dataclass(slots=True, init=False)
class Kept:
    """The sample a statement is collecting while its rows go by: the first DataRow messages as sent.

    One is made per statement with a result, so ``__init__`` is explicit (compiled, a direct call)."""

    description: bytes | None  # the RowDescription the client was sent (None: it never asked for one)
    runs: list[bytes]  # DataRow messages, whole, no value longer than the bound
    rows: int
    cut: int  # values longer than the bound, kept cut

    def __init__(self, description: bytes | None, runs: list[bytes] | None = None, rows: int = 0,
                 cut: int = 0) -> None:
        self.description = description
        self.runs = [] if runs is None else runs
        self.rows = rows
        self.cut = cut

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


_Columns = tuple[list[dict[str, Any]], tuple[tuple[int, int], ...]]  # columns, and each one's (type OID, format)


def _columns(description: bytes | None) -> _Columns:
    fields: tuple[Any, ...] = ()
    if description is not None:
        try:
            fields = decode.row_description(description)
        except ProtocolViolation:  # a description the codec refuses still leaves the rows readable
            fields = ()
    return ([{"name": f.name, "type": f.type_oid, "format": f.format} for f in fields],
            tuple((f.type_oid, f.format) for f in fields))


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


_b64_descriptions: dict[bytes, str] = {}  # a workload repeats the same few results: each encoded once


def stored(value: Journaled | None) -> str | None:
    """The text the store keeps for a journaled sample: JSON of the wire bytes as the client received them,
    base64 (``description``: the RowDescription, ``rows``: the DataRow messages), with ``kept`` rows, the
    ``total`` the result had and the values ``cut``. Kept as bytes, not as text, because turning them into text
    cost the shipper more than storing the record; ``readable`` does it when a replay reads it."""
    if value is None:
        return None
    description, data, kept, cut, total = value
    head = '{"v":1'
    if description is not None:
        b64 = _b64_descriptions.get(description)
        if b64 is None:
            if len(_b64_descriptions) >= 1024:
                _b64_descriptions.clear()
            b64 = _b64_descriptions[description] = base64.b64encode(description).decode("ascii")
        head += ',"description":"' + b64 + '"'
    return (f'{head},"rows":"{base64.b64encode(data).decode("ascii")}","kept":{kept}'
            + (f',"total":{total}' if total >= 0 else "") + (f',"cut":{cut}' if cut else "") + "}")


def readable(text: str) -> dict[str, Any]:
    """A stored sample as text: ``columns`` [{name, type, format}], ``rows`` of text values (binary formats of
    the common types decoded as psql prints them, the rest as hex), ``total`` and ``cut`` when known. Raises
    ValueError when ``text`` is not a stored sample."""
    try:
        doc = json.loads(text)
        description = base64.b64decode(doc["description"], validate=True) if "description" in doc else None
        data = base64.b64decode(doc["rows"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a result sample: {exc}") from None
    columns, kinds = _columns(description)
    rows = _rows(data)
    width = len(rows[0]) if rows else len(kinds)
    if len(kinds) != width:  # no description (or not this result's): unnamed columns, values read as they look
        kinds = ((0, -1),) * width
        columns = [{"name": f"?column{i + 1}?", "type": 0, "format": -1} for i in range(width)]
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
    result: dict[str, Any] = {"columns": columns, "rows": out_rows}
    for key in ("total", "cut"):
        if key in doc:
            result[key] = doc[key]
    return result


def prepare(writes: list[Write]) -> list[Write]:
    """Replace each journaled sample among ``writes`` with its stored text (in place; returns ``writes``)."""
    at = _SAMPLE_AT
    for w in writes:
        if w.table == "statements":
            values = w.values
            if isinstance(values, tuple) and len(values) > at and isinstance(values[at], tuple):
                w.values = (*values[:at], stored(values[at]), *values[at + 1 :])
    return writes


_SAMPLE_AT = INSERT_COLUMNS["statements"].index("result_sample")
