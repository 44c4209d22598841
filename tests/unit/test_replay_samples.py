"""Result samples (audit/samples.py) and the replay player (audit/replay.py), without a server."""

from __future__ import annotations

import base64
import io
import json
import struct
import uuid

import pytest

from wardgate.audit.replay import Frame, asciicast, play
from wardgate.audit.samples import Kept, prepare, readable, stored
from wardgate.protocols.postgres import encode
from wardgate.protocols.postgres.messages import Field
from wardgate.store.db import INSERT_COLUMNS, Write


def _desc(*cols: tuple[str, int, int]) -> bytes:
    return encode.row_description([Field(n, 0, 0, t, -1, -1, f) for n, t, f in cols])


def test_small_runs_are_kept_whole() -> None:
    run = encode.data_row([b"1"]) + encode.data_row([b"2"])
    kept = Kept(None)
    kept.take(run, 2, limit=10, value_bytes=256)
    assert kept.runs == [run] and kept.rows == 2  # by reference: nothing read
    kept.take(run, 2, limit=3, value_bytes=256)  # one more row fits: that one is read off the run
    assert kept.rows == 3 and readable(stored(kept.journaled(4)) or "")["rows"] == [["1"], ["2"], ["1"]]


def test_take_keeps_the_first_rows_and_cuts_long_values() -> None:
    run = b"".join(encode.data_row([str(i).encode(), b"y" * i, None]) for i in range(1, 9))
    kept = Kept(_desc(("n", 23, 0), ("s", 25, 0), ("z", 25, 0)))
    kept.take(run, 8, limit=3, value_bytes=2)
    assert kept.rows == 3 and kept.cut == 1
    kept.take(run, 8, limit=3, value_bytes=2)  # full: a later run adds nothing
    assert kept.rows == 3
    doc = readable(stored(kept.journaled(8)) or "")
    assert doc == {"columns": [{"name": "n", "type": 23, "format": 0}, {"name": "s", "type": 25, "format": 0},
                               {"name": "z", "type": 25, "format": 0}],
                   "rows": [["1", "y", None], ["2", "yy", None], ["3", "yy", None]], "total": 8, "cut": 1}


def test_binary_values_decode_as_psql_prints_them() -> None:
    u = uuid.uuid4()
    cols = [("i2", 21, 1), ("i4", 23, 1), ("i8", 20, 1), ("f8", 701, 1), ("b", 16, 1), ("t", 25, 1),
            ("u", 2950, 1), ("d", 1082, 1), ("ts", 1114, 1), ("tz", 1184, 1), ("j", 3802, 1), ("n", 1700, 1)]
    row = (struct.pack("!h", -2), struct.pack("!i", 40), struct.pack("!q", 2**40), struct.pack("!d", 0.25),
           b"\x01", "zoë".encode(), u.bytes, struct.pack("!i", 366), struct.pack("!q", 86_400_000_000 + 1),
           struct.pack("!q", 0), b"\x01{\"a\": 1}", b"\x00\x01")
    doc = readable(stored((_desc(*cols), encode.data_row(row), 1, 0, 1)) or "")
    assert doc["rows"][0] == ["-2", "40", str(2**40), "0.25", "t", "zoë", str(u), "2001-01-01",
                              "2000-01-02 00:00:00.000001", "2000-01-01 00:00:00+00:00", '{"a": 1}', "\\x0001"]


def test_a_value_that_does_not_fit_its_type_is_shown_as_hex() -> None:
    doc = readable(stored((_desc(("i4", 23, 1)), encode.data_row([b"\x01\x02"]), 1, 0, 1)) or "")
    assert doc["rows"] == [["\\x0102"]]


def test_without_a_description_columns_are_unnamed_and_values_read_as_text_or_hex() -> None:
    doc = readable(stored((None, encode.data_row([b"plain", b"\x00\x01"]), 1, 0, -1)) or "")
    assert [c["name"] for c in doc["columns"]] == ["?column1?", "?column2?"]
    assert doc["rows"] == [["plain", "\\x0001"]] and "total" not in doc


def test_prepare_swaps_the_journaled_sample_for_its_json() -> None:
    width = len(INSERT_COLUMNS["statements"])
    values = (*[None] * (width - 1), (None, encode.data_row([b"a"]), 1, 0, 1))
    other = Write("events", {"kind": "x"})
    writes = prepare([Write("statements", values), other])
    assert readable(writes[0].values[-1])["rows"] == [["a"]] and writes[1] is other  # type: ignore[index]
    assert prepare([Write("statements", tuple([None] * width))])[0].values[-1] is None  # type: ignore[index]


def test_play_keeps_time_scaled_and_bounded() -> None:
    slept: list[float] = []
    out = io.StringIO()
    frames = [Frame(0, "a\n"), Frame(1.0, "b\n"), Frame(61.0, "c\n")]
    play(frames, out, speed=2, max_wait=5, sleep=slept.append)
    assert out.getvalue() == "a\nb\nc\n" and slept == [0.5, 5]
    slept.clear()
    play(frames, io.StringIO(), speed=0, sleep=slept.append)
    assert slept == []


def test_asciicast_v2_header_and_events() -> None:
    out = io.StringIO()
    n = asciicast([Frame(0, "x\n"), Frame(2.5, "y\n")], out, title="t", timestamp=1_700_000_000.7, speed=1)
    lines = out.getvalue().splitlines()
    assert n == 2 and json.loads(lines[0])["version"] == 2 and json.loads(lines[0])["timestamp"] == 1_700_000_000
    assert [json.loads(x) for x in lines[1:]] == [[0.0, "o", "x\r\n"], [2.5, "o", "y\r\n"]]


def test_a_stored_sample_is_the_wire_bytes_and_garbage_is_refused() -> None:
    desc = _desc(("n", 23, 0))
    text = stored((desc, encode.data_row([b"7"]), 1, 0, 3)) or ""
    doc = json.loads(text)
    assert doc["v"] == 1 and doc["kept"] == 1 and doc["total"] == 3 and "cut" not in doc
    assert base64.b64decode(doc["description"]) == desc and base64.b64decode(doc["rows"]) == encode.data_row([b"7"])
    for bad in ("{}", "not json", '{"rows": "***"}'):
        with pytest.raises(ValueError, match="not a result sample"):
            readable(bad)
