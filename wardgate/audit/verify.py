"""`wardgate audit verify`: walk every chain of the store and check it against its signed checkpoints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..identity.keys import public_kid
from ..store import Store
from ..store.auditlog import AuditLog
from ..store.db import INSERT_COLUMNS
from .chain import GENESIS, Entry, Problem, Report, entry_hash, entry_records, verify_chain
from .crosscheck import cross_check


def load_public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def keyring(pems: Mapping[str, str] | list[str]) -> dict[str, Ed25519PublicKey]:
    """Public keys by kid (the kid is derived from the key, so a key file needs no name)."""
    out = {}
    for pem in pems.values() if isinstance(pems, Mapping) else pems:
        key = load_public_key(pem)
        out[public_kid(key)] = key
    return out


def verify_store(store: Store, keys: dict[str, Ed25519PublicKey], since: str | None = None,
                 until: str | None = None) -> Report:
    """Every chain: its entries (in the time range, if given), its head row and its checkpoints."""
    log = AuditLog(store)
    heads = log.heads()
    report = Report()
    everything: list[Entry] = []
    for chain in log.chains():
        entries = list(log.entries(chain, since, until))
        everything += entries
        head = heads.get(chain)
        first_seq, first_prev = (int(head["first_seq"]), head["first_prev"]) if head else (1, GENESIS)
        if since and entries:  # a range starts wherever its first entry is; what came before is out of scope
            first_seq, first_prev = entries[0].seq, entries[0].prev
        checkpoints = log.checkpoints(chain)
        if since or until:
            lo = entries[0].seq if entries else 0
            hi = entries[-1].seq if entries else -1
            checkpoints = [c for c in checkpoints if lo <= c.seq <= hi]
        verify_chain(chain, entries, checkpoints, keys, first_seq, first_prev, report, bounded=bool(since))
        if head is None and entries:
            report.problems.append(Problem(chain, entries[-1].seq, "unlinked", "the chain's head row is missing"))
        elif head is not None and not (since or until):
            last = entries[-1].seq if entries else first_seq - 1
            if int(head["seq"]) > last:
                report.problems.append(Problem(chain, last + 1, "truncated",
                                               f"the chain's head is #{head['seq']} but its entries end at #{last}"))
            elif int(head["seq"]) < last:
                report.problems.append(Problem(chain, int(head["seq"]) + 1, "inserted",
                                               f"entries after the chain's head #{head['seq']}"))
            elif entries and head["hash"] != entries[-1].hash:
                report.problems.append(Problem(chain, last, "altered", "the last entry is not the chain's head"))
    if not (since or until):  # the tables hold everything: compare them with all of the chain
        problems, report.uncovered = cross_check(store, everything, log.chain_started_at())
        report.problems += problems
        report.tables_checked = True
        report.problems += cross_links(everything, heads)
    return report


def cross_links(entries: list[Entry], heads: dict[str, dict[str, Any]]) -> list[Problem]:
    """Each gateway start records the heads of every chain it found (its ``config_loaded`` event, on its own
    chain). A chain that such a verified record names must still reach that position with that hash: deleting a
    whole chain, with its checkpoints and head, is otherwise invisible in the store."""
    by_pos = {(e.chain, e.seq): e.hash for e in entries}
    known: dict[tuple[str, int], tuple[str, str]] = {}  # (chain, seq) -> (hash, the chain that saw it)
    for e in entries:
        if '"config_loaded"' not in e.record or entry_hash(e.chain, e.seq, e.at, e.prev, e.record) != e.hash:
            continue
        for record in entry_records(e.record):
            if '"config_loaded"' not in record:
                continue
            try:
                table, _, values = json.loads(record)
                detail = json.loads(values[INSERT_COLUMNS["events"].index("detail")] if isinstance(values, list)
                                    else values["detail"])
                seen = detail.get("chains") or {}
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                continue
            if table != "events" or not isinstance(seen, dict):
                continue
            for chain, pos in seen.items():
                if isinstance(pos, dict) and isinstance(pos.get("seq"), int) and isinstance(pos.get("hash"), str):
                    known[(chain, pos["seq"])] = (pos["hash"], e.chain)
    problems = []
    for (chain, seq), (hash_, witness) in sorted(known.items()):
        head = heads.get(chain)
        if head is not None and seq < int(head["first_seq"]):
            continue  # pruned by retention, at a signed boundary
        if head is None and not any(c == chain for c, _ in by_pos):
            problems.append(Problem(chain, seq, "removed", f"the whole chain is gone; {witness} recorded it at "
                                                           f"#{seq} when its gateway started"))
        elif by_pos.get((chain, seq)) != hash_:
            problems.append(Problem(chain, seq, "altered", f"{witness} recorded this chain's #{seq} with another "
                                                           f"hash when its gateway started (or the entry is gone)"))
    return problems
