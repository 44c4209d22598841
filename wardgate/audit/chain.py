"""The audit hash chain: canonical records, their hashes, signed checkpoints, and the verification walk.

Pure (no database, no files): the store appends what ``link`` computes, ``wardgate audit verify`` feeds rows to
``verify_chain``. Each store transaction of a writer appends one entry to its chain, holding the audit writes (a
session opened or ended, a statement, an event) of that transaction: each gateway process appends to a chain of
its own (no lock shared between replicas), the CLI to the chain ``cli``. An entry's hash covers its chain,
sequence number, time, the previous entry's hash and its records, so changing, removing, moving or inserting a
record or an entry breaks the chain where it happened.

One entry per transaction, not per record: the gateway's shipper commits a few hundred statement records at a
time under load, and an entry row per record was a fifth of its work per record (210,000 -> 169,000 instructions,
bench/shipper.py under callgrind).
The proof is the same: every record is hashed into the chain, in order, and the tables are compared with the
records (audit/crosscheck.py), so tampering is still named by the table row it touched.

A hash chain alone proves nothing to someone who can rewrite the whole table: anyone may recompute SHA-256.
Checkpoints close that: every N entries or T seconds the writer signs (chain, seq, hash) with an Ed25519 key kept
outside the store, whose public key auditors hold. Rewriting anything up to a checkpoint changes the hash the
signature covers; cutting the chain short of a checkpoint leaves the checkpoint pointing past the end.

The entry hash, for anyone re-implementing the check::

    sha256( chain "\\n" seq "\\n" at "\\n" prev "\\n" record )     (UTF-8; seq in decimal; prev in hex)

where ``record`` is the entry's records, each the canonical JSON text of one audit write (keys sorted, no spaces,
UTF-8), joined by a newline (a one-record entry is that record's text), ``at`` an ISO 8601 UTC time,
and the first entry's ``prev`` is 64 zeros. A checkpoint signs ``wardgate-checkpoint\\n chain \\n seq \\n hash \\n at``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import _records

GENESIS = "0" * 64
CLI_CHAIN = "cli"  # the chain of events the `wardgate` commands record themselves


def iso(value: datetime | float) -> str:
    """The one text form of a time in the chain: UTC, microseconds, a Z."""
    dt = datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else value.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"an audit record cannot hold a {type(value).__name__}")


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_plain).encode
# The same encoding, called without JSONEncoder.encode's per-call set-up (a third of its cost on a statement
# record). No circular-reference check: records are flat values the gateway built.
_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # CPython's _json; not in the typeshed stubs
_encode = None if _c_encoder is None else _c_encoder(None, _plain, json.encoder.c_encode_basestring,  # type: ignore[attr-defined]
                                                     None, ":", ",", True, False, False)


def canonical(table: str, key: str | None, values: Mapping[str, Any] | Sequence[Any]) -> str:
    """A record's canonical JSON: ``[table, key, values]``, no whitespace, object keys sorted, UTF-8. An insert
    journaled as a tuple keeps its values in the table's insert-column order (``store.db.INSERT_COLUMNS``);
    times stay what the gateway journaled (epoch seconds). One C-encoded dump: the shipper chains every record,
    so this is its per-record cost (about 2 us)."""
    doc = [table, key, values if isinstance(values, Mapping) else list(values)]
    return _dumps(doc) if _encode is None else "".join(_encode(doc, 0))


def canonical_insert(table: str, values: tuple[Any, ...], at: int = -1, replacement: Any = None) -> str:
    """``canonical(table, None, values)`` with ``values[at]`` replaced by ``replacement`` (when ``at`` >= 0), the
    form every chained statement takes (its sample by digest). Written in C (``_records.c``: the shipper's largest
    per-record cost after SQLite's own: 4.9 us in Python, 1.7 us there); a value the C code does not write exactly
    as json does (a datetime, bytes, a big int, a NaN...) sends the record here, and json decides."""
    text = _records.insert_text(table, values, at, replacement)
    if text is None:
        if at >= 0:
            values = (*values[:at], replacement, *values[at + 1 :])
        return canonical(table, None, values)
    return text


#: How a statement's result sample is chained: by the SHA-256 of its stored text, not the text itself. The sample
#: (up to ``audit.replay.rows`` rows as the client received them) is the largest part of a statement's record;
#: storing it twice (table row and chain entry) doubled what the shipper writes for a 10-row sample. The digest
#: proves the stored sample just as well: the cross-check hashes the table's sample and compares.
SAMPLE_DIGEST = "sha256:"


def sample_digest(text: str) -> str:
    return SAMPLE_DIGEST + hashlib.sha256(text.encode()).hexdigest()


#: Between the records of one entry. Canonical JSON never holds a raw newline (one inside a value is escaped), so
#: splitting on it gives the records back exactly.
RECORD_SEP = "\n"


def entry_text(records: Sequence[str]) -> str:
    """The ``record`` column of an entry holding ``records`` (canonical JSON texts, in the order written)."""
    return RECORD_SEP.join(records)


def entry_records(text: str) -> list[str]:
    """The records of an entry's ``record`` column."""
    return text.split(RECORD_SEP)


def entry_hash(chain: str, seq: int, at: str, prev: str, record: str) -> str:
    return hashlib.sha256(f"{chain}\n{seq}\n{at}\n{prev}\n{record}".encode()).hexdigest()


@dataclass(slots=True)
class Entry:
    """One link of a chain; ``record`` holds one or more records (``entry_records``). Not frozen, though nothing
    changes one: a frozen dataclass's ``__init__`` costs ~7x a plain one's (store.db.Write says more)."""

    chain: str
    seq: int
    at: str
    prev: str
    record: str
    hash: str


def link(chain: str, head_seq: int, head_hash: str, at: str, records: Iterable[str]) -> list[Entry]:
    """The entries that append ``records`` (each an entry's ``record`` text) to a chain whose head is (head_seq,
    head_hash)."""
    out = []
    seq, prev = head_seq, head_hash
    for record in records:
        seq += 1
        h = entry_hash(chain, seq, at, prev, record)
        out.append(Entry(chain, seq, at, prev, record, h))
        prev = h
    return out


def checkpoint_message(chain: str, seq: int, hash_: str, at: str) -> bytes:
    return f"wardgate-checkpoint\n{chain}\n{seq}\n{hash_}\n{at}".encode()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    chain: str
    seq: int
    hash: str
    at: str
    kid: str
    signature: str  # base64


def sign_checkpoint(key: Ed25519PrivateKey, kid: str, chain: str, seq: int, hash_: str, at: str) -> Checkpoint:
    sig = key.sign(checkpoint_message(chain, seq, hash_, at))
    return Checkpoint(chain, seq, hash_, at, kid, base64.b64encode(sig).decode("ascii"))


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of the walk: ``what`` is altered, removed, moved, inserted, truncated, unsigned or forged."""

    chain: str
    seq: int
    what: str
    detail: str

    def __str__(self) -> str:
        return f"{self.chain} #{self.seq}: {self.what}: {self.detail}"


@dataclass
class Report:
    chains: int = 0
    entries: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    unattested: dict[str, int] = field(default_factory=dict)  # entries after a chain's last valid checkpoint
    tables_checked: bool = False  # sessions, statements and events compared with the chain (audit/crosscheck.py)
    uncovered: int = 0  # table rows older than the first chain entry (a store from before the chain)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(chain: str, entries: Sequence[Entry], checkpoints: Sequence[Checkpoint],
                 keys: Mapping[str, Ed25519PublicKey], first_seq: int = 1, first_prev: str = GENESIS,
                 report: Report | None = None, bounded: bool = False) -> Report:
    """Walk one chain's entries (any order; they are sorted by seq here) from ``first_seq``, whose ``prev`` must be
    ``first_prev`` (the genesis, or the boundary hash kept when older entries were pruned, which a signed
    checkpoint must cover), and check each checkpoint against them. Every problem is named by the sequence number
    where it shows. ``bounded``: the caller chose the start (a --from range), so no boundary checkpoint is due."""
    rep = report or Report()
    rep.chains += 1
    rows = sorted(entries, key=lambda e: e.seq)
    rep.entries += len(rows)
    by_prev = {e.prev: e for e in rows}
    hash_at: dict[int, str] = {}
    expected_seq, expected_prev = first_seq, first_prev
    after_problem = False  # the link after a moved entry is broken by that move: reported once, not twice
    for e in rows:
        if e.seq < expected_seq:
            continue  # before the verified range (pruned boundary)
        if e.seq > expected_seq:
            gone = f"#{expected_seq}" if e.seq == expected_seq + 1 else f"#{expected_seq}-#{e.seq - 1}"
            rep.problems.append(Problem(chain, expected_seq, "removed", f"entries {gone} are missing"))
        own = entry_hash(chain, e.seq, e.at, e.prev, e.record)
        moved_before, after_problem = after_problem, False
        if own != e.hash:
            moved = _moved_from(chain, e, rows)
            if moved is not None:
                rep.problems.append(Problem(chain, e.seq, "moved",
                                            f"the entry recorded as #{moved} is stored as #{e.seq}"))
                after_problem = True
            else:
                rep.problems.append(Problem(chain, e.seq, "altered",
                                            f"its content no longer matches its hash ({_what(e.record)})"))
        elif e.prev != expected_prev and e.seq == expected_seq and not moved_before:
            if by_prev.get(expected_prev) is None and e.seq > first_seq:
                rep.problems.append(Problem(chain, e.seq, "inserted",
                                            f"it does not follow #{e.seq - 1} ({_what(e.record)})"))
            else:
                rep.problems.append(Problem(chain, e.seq, "unlinked",
                                            f"its previous-hash is not #{e.seq - 1}'s"))
        hash_at[e.seq] = e.hash
        expected_seq, expected_prev = e.seq + 1, e.hash
    last = rows[-1].seq if rows else first_seq - 1
    attested = first_seq - 1
    boundary_signed = first_seq == 1 and first_prev == GENESIS
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        rep.checkpoints += 1
        key = keys.get(cp.kid)
        if key is None:
            rep.problems.append(Problem(chain, cp.seq, "unsigned",
                                        f"checkpoint signed by an unknown key {cp.kid!r}"))
            continue
        try:
            key.verify(base64.b64decode(cp.signature), checkpoint_message(chain, cp.seq, cp.hash, cp.at))
        except (InvalidSignature, ValueError):
            rep.problems.append(Problem(chain, cp.seq, "forged", "checkpoint signature does not verify"))
            continue
        if cp.seq == first_seq - 1 and cp.hash == first_prev:
            boundary_signed = True  # the pruned part ended exactly at a signed checkpoint
        if cp.seq < first_seq:
            continue
        if cp.seq > last:
            rep.problems.append(Problem(chain, cp.seq, "truncated",
                                        f"a checkpoint signed at {cp.at} covers #{cp.seq}, but the chain ends at "
                                        f"#{last}: entries #{last + 1}-#{cp.seq} were removed"))
            continue
        if hash_at.get(cp.seq) != cp.hash:
            rep.problems.append(Problem(chain, cp.seq, "altered",
                                        f"the signed checkpoint of {cp.at} does not match the chain at #{cp.seq}: "
                                        f"an entry in #{attested + 1}-#{cp.seq} was changed and the entries after "
                                        f"it re-hashed"))
            continue
        attested = max(attested, cp.seq)
    if not boundary_signed and not bounded:
        rep.problems.append(Problem(chain, first_seq, "removed",
                                    f"entries before #{first_seq} are gone, and no signed checkpoint ends at the "
                                    f"boundary hash the chain starts from (retention prunes only signed ranges)"))
    if last > attested:
        rep.unattested[chain] = last - attested
    return rep


def _moved_from(chain: str, e: Entry, rows: Sequence[Entry]) -> int | None:
    """The sequence number an entry's content was hashed for, if it verifies there (a reordering)."""
    for s in {r.seq for r in rows} | {r.seq + 1 for r in rows}:
        if s != e.seq and entry_hash(chain, s, e.at, e.prev, e.record) == e.hash:
            return s
    return None


def _what(record: str) -> str:
    """A short, secret-free description of an entry's records for a report: their tables, and whether each was an
    insert or an update (``statements insert``, or ``3 records: 2 statements insert, sessions update``)."""
    kinds: Counter[str] = Counter()
    recs = entry_records(record)
    for rec in recs:
        try:
            table, key, _ = json.loads(rec)
            kinds[f"{table} {'update' if key else 'insert'}"] += 1
        except (ValueError, TypeError):
            kinds["unreadable record"] += 1
    if len(recs) == 1:
        return next(iter(kinds))
    return f"{len(recs)} records: " + ", ".join(k if n == 1 else f"{n} {k}" for k, n in kinds.items())
