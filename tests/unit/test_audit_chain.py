"""The chain's verification walk on synthetic chains: each kind of tampering is named where it happened."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from wardgate.audit.chain import (
    GENESIS,
    canonical,
    entry_hash,
    entry_records,
    entry_text,
    iso,
    link,
    sign_checkpoint,
    verify_chain,
)

KEY = Ed25519PrivateKey.generate()
KEYS = {"k": KEY.public_key()}
AT = iso(1_800_000_000.5)


def chain(n: int = 10) -> list:  # type: ignore[type-arg]
    recs = [canonical("statements", None, {"seq": i, "text": f"select {i}", "at": 1_800_000_000.0 + i})
            for i in range(1, n + 1)]
    return link("gw", 0, GENESIS, AT, recs)


def problems(entries: list, checkpoints: list | None = None) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    rep = verify_chain("gw", entries, checkpoints or [], KEYS)
    return [(p.what, p.seq) for p in rep.problems]


def test_canonical_form_is_stable_and_times_are_iso() -> None:
    a = canonical("events", "id", {"b": 1, "a": "é", "at": datetime(1970, 1, 1, tzinfo=UTC), "n": None})
    assert a == '["events","id",{"a":"é","at":"1970-01-01T00:00:00.000000Z","b":1,"n":null}]'
    assert canonical("statements", None, ("s", 1, 1.5)) == '["statements",null,["s",1,1.5]]'
    e = chain(1)[0]
    assert e.hash == entry_hash("gw", 1, AT, GENESIS, e.record) and e.prev == GENESIS


def test_canonical_form_is_the_documented_json_dump() -> None:
    """The shipper's direct call into the C encoder must write exactly what json.dumps with the documented settings
    writes (the text is hashed, and re-implementers follow the docstring)."""
    values = {"z": [1, 2.5, None, True], "é\n\"": "\u2028 tab\t", "b": b"\x00\xff", "big": 2**70, "neg": -0.0,
              "nested": {"y": 1, "x": [{"b": 1, "a": 2}]}}
    for table, key, vals in (("events", "id", values), ("statements", None, ("s", 1, 1.5, "x" * 300, None, b"ab"))):
        expected = json.dumps([table, key, vals if isinstance(vals, dict) else list(vals)], sort_keys=True,
                              separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                              default=lambda v: base64.b64encode(v).decode())
        assert canonical(table, key, vals) == expected
    with pytest.raises(ValueError):
        canonical("statements", None, (float("nan"),))


def test_intact_chain_with_checkpoints() -> None:
    entries = chain()
    cps = [sign_checkpoint(KEY, "k", "gw", e.seq, e.hash, AT) for e in entries if e.seq in (5, 10)]
    rep = verify_chain("gw", entries, cps, KEYS)
    assert rep.ok and rep.entries == 10 and rep.checkpoints == 2 and rep.unattested == {}
    rep = verify_chain("gw", entries, cps[:1], KEYS)
    assert rep.ok and rep.unattested == {"gw": 5}


def test_each_kind_of_tampering() -> None:
    entries = chain()
    altered = list(entries)
    altered[3] = dataclasses.replace(altered[3], record=altered[3].record.replace("select", "delete"))
    assert problems(altered) == [("altered", 4)]
    assert problems(entries[:3] + entries[4:]) == [("removed", 4)]
    swapped = list(entries)
    swapped[3], swapped[4] = (dataclasses.replace(entries[4], seq=4), dataclasses.replace(entries[3], seq=5))
    assert problems(swapped) == [("moved", 4), ("moved", 5)]
    forged = link("gw", 3, "f" * 64, AT, ['{"table":"events"}'])[0]
    assert ("inserted", 4) in problems([*entries[:3], forged, *entries[4:]])


def test_checkpoints_catch_what_a_rehash_hides() -> None:
    entries = chain()
    cp = sign_checkpoint(KEY, "k", "gw", 10, entries[-1].hash, AT)
    recs = [e.record for e in entries]
    recs[2] = recs[2].replace("select", "delete")
    rewritten = link("gw", 0, GENESIS, AT, recs)  # self-consistent, but not what was signed
    assert problems(rewritten) == []
    assert problems(rewritten, [cp]) == [("altered", 10)]
    assert problems(entries[:7], [cp]) == [("truncated", 10)]
    bad = dataclasses.replace(cp, signature=sign_checkpoint(KEY, "k", "gw", 9, entries[-1].hash, AT).signature)
    assert problems(entries, [bad]) == [("forged", 10)]
    assert problems(entries, [dataclasses.replace(cp, kid="other")]) == [("unsigned", 10)]


def test_a_pruned_chain_verifies_from_its_signed_boundary() -> None:
    entries = chain()
    boundary = sign_checkpoint(KEY, "k", "gw", 5, entries[4].hash, AT)
    rep = verify_chain("gw", entries[5:], [boundary], KEYS, first_seq=6, first_prev=entries[4].hash)
    assert rep.ok and rep.entries == 5
    rep = verify_chain("gw", entries[6:], [boundary], KEYS, first_seq=6, first_prev=entries[4].hash)
    assert [(p.what, p.seq) for p in rep.problems] == [("removed", 6)]
    # pruned where no checkpoint was signed (or the boundary rewritten): the missing part is reported
    rep = verify_chain("gw", entries[5:], [], KEYS, first_seq=6, first_prev=entries[4].hash)
    assert [(p.what, p.seq) for p in rep.problems] == [("removed", 6)]
    rep = verify_chain("gw", entries[3:], [boundary], KEYS, first_seq=4, first_prev=entries[2].hash)
    assert [(p.what, p.seq) for p in rep.problems] == [("removed", 4)]


def test_a_result_sample_is_chained_by_its_digest() -> None:
    from wardgate.audit.chain import sample_digest
    from wardgate.store.chainlog import records
    from wardgate.store.db import INSERT_COLUMNS, Write

    sample = '{"v":1,"rows":"RAAAAA==","kept":1}'
    cols = INSERT_COLUMNS["statements"]
    values = tuple(sample if c == "result_sample" else None for c in cols)
    (rec,) = records([Write("statements", values)])
    assert sample not in rec and sample_digest(sample) in rec
    assert json.loads(rec)[2][cols.index("result_sample")] == sample_digest(sample)
    (rec,) = records([Write("statements", {"session_id": "s", "seq": 1, "result_sample": sample})])
    assert json.loads(rec)[2]["result_sample"] == sample_digest(sample)
    (rec,) = records([Write("statements", (None,) * len(cols))])
    assert json.loads(rec)[2][cols.index("result_sample")] is None  # no sample, nothing to digest
    assert records([Write("tokens", {"id": "t"})]) == []


_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(), st.binary(max_size=20))


@given(st.lists(st.tuples(st.sampled_from(["sessions", "statements", "events"]), st.one_of(st.none(), st.just("id")),
                          st.one_of(st.dictionaries(st.text(max_size=8), _VALUE, max_size=5),
                                    st.lists(_VALUE, max_size=6))), min_size=1, max_size=6))
def test_an_entrys_records_split_back_exactly(records: list[tuple[str, str | None, object]]) -> None:
    """Records share an entry joined by a newline: no canonical record may hold one (newlines, U+2028 and other
    line breaks inside values stay escaped or are not the separator), so the split gives them back."""
    texts = [canonical(t, k, v) for t, k, v in records]  # type: ignore[arg-type]
    assert all("\n" not in t for t in texts)
    assert entry_records(entry_text(texts)) == texts
    assert entry_text(texts[:1]) == texts[0]  # a one-record entry is the record itself, as before batching


def test_a_batched_entry_is_described_by_its_records() -> None:
    recs = [canonical("sessions", None, {"id": "s"}), canonical("statements", None, ("s", 1)),
            canonical("statements", None, ("s", 2)), canonical("sessions", "id", {"id": "s", "ended_at": 1.0})]
    (e,) = link("gw", 0, GENESIS, AT, [entry_text(recs)])
    altered = dataclasses.replace(e, record=e.record.replace('"s",2', '"s",3'))
    rep = verify_chain("gw", [altered], [], KEYS)
    assert [(p.what, p.seq) for p in rep.problems] == [("altered", 1)]
    assert "4 records: sessions insert, 2 statements insert, sessions update" in rep.problems[0].detail
