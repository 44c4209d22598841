"""SQLite's own cost for what the audit shipper writes, bound from C: the floor under ``bench/shipper.py``.

    .venv/bin/python bench/shipper_floor.py [--records 60000] [--batch 500]     # gcc and libsqlite3-dev

Builds ``shipper_floor.c`` and runs it on a store wardgate migrated (the same tables, indexes and pragmas): for
each record one statements row bound straight from C (the shape of a pgbench select-only record, sample
included), and per batch one chain entry holding the records' canonical texts. Printed with and without the
chain entry. The shipper's CPU a record (``bench/shipper.py``) minus this is its own work on the records:
decoding the journal, the sample's and the chain's texts, the digest, and the sqlite3 module's binding.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shipper import store_with_session  # bench/shipper.py: the same store and session


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=60000)
    ap.add_argument("--batch", type=int, default=500, help="records a transaction (the shipper's at ~10,000/s)")
    args = ap.parse_args()
    if shutil.which("gcc") is None:
        raise SystemExit("gcc is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "floor"
        build = subprocess.run(["gcc", "-O2", "-o", str(binary), str(Path(__file__).with_name("shipper_floor.c")),
                                "-lsqlite3"], capture_output=True, text=True)
        if build.returncode != 0:
            raise SystemExit(f"building shipper_floor.c failed (libsqlite3-dev installed?):\n{build.stderr}")
        for entry in (1, 0):
            db = Path(tmp) / f"store-{entry}.db"
            store, session = store_with_session(f"sqlite:///{db}")
            store.close()
            subprocess.run([str(binary), str(db), session, str(args.records), str(args.batch), str(entry)],
                           check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
