"""Time masking's row test alone: ``_datarow.may_match`` over bench/masking.py's 1,000 plain rows.

    .venv/bin/python bench/rowtest.py [--rounds 15] [--compare NAME=PATH ...]

The row test is what masking costs on a result with nothing to mask (issue 5's "no row containing PII" line):
for every row, find the values of the scanned columns (name, handle, ref) and ask whether any may hold a match of
the 13 built-in detectors. This times it on one buffer of DataRow messages built as PostgreSQL sends them, in
microseconds per 1,000 rows (minimum and median of ``--rounds`` rounds of 200 calls). ``--compare`` loads other
builds of the module (a ``_datarow*.so`` built from another commit) and alternates them with this one, so that a
change is judged within one run; the machine's speed moves between runs. An older build may not know the
``WARDGATE_PREFILTER_ISA`` cap (builds before 7d3678e: ``WARDGATE_PREFILTER_PORTABLE=1``).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import masking

from wardgate.masking import Scanner
from wardgate.protocols.postgres import _datarow, encode

COLUMNS = (1, 2, 3)  # name, handle, ref: the text columns; id and amount are numbers, which masking skips
SKIPS = (0, 0, 0)


def load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(_datarow.__name__, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--compare", nargs="*", default=[], metavar="NAME=PATH", help="other builds of _datarow")
    args = ap.parse_args()
    rows = masking.plain_rows(random.Random(5))
    buf = b"".join(encode.data_row([str(r[0]).encode(), r[1].encode(), r[2].encode(), r[3].encode(),
                                    r[4].encode()]) for r in rows)
    bits = Scanner.builtin().prefilter.native_bits
    builds: dict[str, ModuleType] = {"this build": _datarow}
    for item in args.compare:
        name, _, path = item.partition("=")
        builds[name] = load(path)
    for name, module in builds.items():
        if module.may_match(buf, COLUMNS, SKIPS, bits):
            raise SystemExit(f"{name}: the plain rows may match, which they must not")
    times: dict[str, list[float]] = {name: [] for name in builds}
    for _ in range(args.rounds):
        for name, module in builds.items():
            test = module.may_match
            start = time.perf_counter_ns()
            for _ in range(200):
                test(buf, COLUMNS, SKIPS, bits)
            times[name].append((time.perf_counter_ns() - start) / 200 / 1000 * 1000 / len(rows))
    print(f"may_match over {len(rows):,} plain rows ({len(buf):,} bytes), columns {COLUMNS}, all 13 detectors, "
          f"row test {_datarow.isa()} (WARDGATE_PREFILTER_ISA=avx2 or portable caps it)")
    for name, t in times.items():
        print(f"{name}: {min(t):.1f} us min, {statistics.median(t):.1f} us median per 1,000 rows")


if __name__ == "__main__":
    main()
