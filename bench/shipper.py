"""The audit shipper's cost per record, without a gateway: what the second process spends on each statement.

    .venv/bin/python bench/shipper.py [--records 30000] [--no-samples] [--postgres] [--profile] [--default-gc]

Writes a journal of statement records shaped like pgbench select-only's (one row kept per result), ships it into
a fresh store with the shipper's own code (journal decode, samples, store write, hash chain, checkpoints) and
prints microseconds per record. Under select-only each transaction is one such record, so this is the audit's
share of the gateway's CPU per transaction that ``bench/run.py --audit-off`` measures from outside.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wardgate.audit.journal import Journal, encode
from wardgate.audit.shipper import Shipper, quiet_collector
from wardgate.audit.signing import Checkpointer, audit_key
from wardgate.protocols.postgres import encode as wire
from wardgate.protocols.postgres.messages import Field
from wardgate.store import Store
from wardgate.store.db import Write

_DESCRIPTION = wire.row_description([Field("abalance", 16397, 3, 23, 4, -1, 1)])
# the 1,000-row workload of bench/run.py: aid, bid, abalance, filler (char(84)), text format
_WIDE = wire.row_description([Field(n, 16397, i + 1, t, s, -1, 0) for i, (n, t, s) in
                              enumerate((("aid", 23, 4), ("bid", 23, 4), ("abalance", 23, 4), ("filler", 1042, -1)))])


def statement(session: str, seq: int, samples: bool, rows: int = 1) -> Write:
    if rows > 1:
        data = b"".join(wire.data_row([str(seq * 1000 + r).encode(), b"1", b"0", b" " * 84]) for r in range(rows))
        sample = (_WIDE, data, rows, 0, 1000) if samples else None
    else:
        sample = (_DESCRIPTION, wire.data_row([b"\x00\x00\x00\x00"]), 1, 0, 1) if samples else None
    return Write("statements", (
        session, seq, time.time(), "extended", "select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
        1, "ok", "SELECT 1", 1, None, None, 0.081, "allow", "default", None, None, sample))


def store_with_session(url: str) -> tuple[Store, str]:
    """A migrated store holding one session, the session the benchmark's statement records belong to."""
    store = Store(url)
    store.migrate()
    session = str(uuid.uuid4())
    store.write([Write("sessions", {"id": session, "user": "bench", "groups": "[]", "auth_method": "password",
                                    "connection": "bench", "protocol": "postgres", "client_addr": "127.0.0.1",
                                    "application_name": "pgbench", "gateway": "bench", "started_at": time.time(),
                                    "bytes_from_client": 0, "bytes_to_client": 0})])
    return store, session


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=30000)
    ap.add_argument("--batch", type=int, default=300, help="records per journal append (one gateway commit)")
    ap.add_argument("--no-samples", action="store_true", help="records without a result sample")
    ap.add_argument("--rows", type=int, default=1,
                    help="rows kept per result (10: the 1,000-row workload's sample at the default audit.replay.rows)")
    ap.add_argument("--postgres", default=None, help="a PostgreSQL store URL instead of a fresh SQLite file")
    ap.add_argument("--profile", action="store_true", help="print the shipping's cProfile, by own time")
    ap.add_argument("--default-gc", action="store_true",
                    help="keep Python's default collector settings (the shipper process tunes them: quiet_collector)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, session = store_with_session(args.postgres or f"sqlite:///{root / 'store.db'}")
        journal = Journal(root / "journal", f"bench-{session[:8]}")
        for start in range(0, args.records, args.batch):
            writes = [statement(session, s + 1, not args.no_samples, args.rows)
                      for s in range(start, min(start + args.batch, args.records))]
            journal.append(encode(writes))
        checkpointer = Checkpointer(store, audit_key(root / "audit.key"), 1000, 10.0)
        shipper = Shipper(store, journal.path, checkpointer=checkpointer)
        if not args.default_gc:
            quiet_collector()  # as the shipper process does once it has started
        prof = cProfile.Profile() if args.profile else None
        t0, c0 = time.perf_counter(), time.process_time()
        if prof is not None:
            prof.enable()
        shipped = shipper.ship_available()
        if prof is not None:
            prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        shipper.close()
        journal.close(remove=True)
        store.close()
    kept = "no samples" if args.no_samples else f"{args.rows} row(s) kept each"
    print(f"{shipped} records ({kept}, "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}): {wall / shipped * 1e6:.1f} us wall, "
          f"{cpu / shipped * 1e6:.1f} us CPU per record")
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
