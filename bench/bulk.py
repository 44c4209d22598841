"""The per-row loops of result masking on a run of 1,000 DataRows: the Python specifications against the C modules.

    .venv/bin/python bench/bulk.py [--rows 1000] [--repeat 7] [--seconds 0.3]

Rows: id, name, email, card, amount (``PII``: a real address and card number in each row; ``plain``: an order
code and a user name in those columns instead). Timed, in microseconds per 1,000 rows:

* walk: ``decode.data_row_walk`` against ``_datarow.walk``, all five columns chosen;
* partial_many: ``bulk.partial_many_py`` against ``_bulk.partial_many`` on the email and card columns (both in
  place: each call gets a fresh copy of the buffer, whose cost, shown apart, is taken out of both figures);
* candidates: ``bulk.candidates_py`` against ``_bulk.candidates`` on the name column, every built-in detector;
* whole_kinds: ``bulk.whole_kinds_py`` (the Python scanner, value by value) against ``_bulk.whole_kinds`` on the
  email and card columns together (2 values a row), every built-in detector; also in nanoseconds per value, and
  how many values the C recognised;
* partial_kinds: ``bulk.partial_kinds_py`` against ``_bulk.partial_kinds`` on those values and kinds (in place,
  the copy taken out as for partial_many);
* mask_rows: the whole ``ResultPlan.mask_rows`` as the gateway calls it (``pg_masking.ROWS``), with the Python
  fallbacks forced (``bulk._native`` and ``decode._walk_native`` set to None: what runs when the modules are not
  built) and with the C modules. Plans: ``columns+detectors`` (email and card masked whole in the partial style,
  every built-in detector on the other text columns) and ``detectors`` (no marked column).

Each figure is the best of ``--repeat`` timings, each timing the mean over a loop of about ``--seconds``.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prefilter import best  # one timing loop for the micro-benchmarks

from wardgate.frontends.pg_masking import ROWS
from wardgate.masking import _bulk, bulk
from wardgate.masking.detectors import BUILTIN_DETECTORS, Prefilter, Scanner
from wardgate.masking.maskers import Style
from wardgate.masking.policy import ColumnName, ColumnPattern, MaskingPolicy, MaskRule, expand_detectors
from wardgate.masking.results import Column, Kind, ResultPlan
from wardgate.protocols.postgres import _datarow, decode
from wardgate.protocols.postgres.encode import data_row

FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Élodie", "Fatima", "Günter", "Hiro", "Ingrid", "José", "Kwame", "Lena"]
LAST = ["Smith", "Müller", "García", "Rossi", "Dubois", "Nakamura", "Kowalski", "O'Brien", "Jensen", "Silva"]
CARDS = [b"4111 1111 1111 1111", b"5555555555554444", b"3782 822463 10005", b"4012-8888-8888-1881"]
COLUMNS = (0, 1, 2, 3, 4)
EMAIL, CARD, NAME = 2, 3, 1


def rows(n: int, pii: bool) -> bytes:
    rng = random.Random(7)
    out = []
    for i in range(1, n + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if pii:
            email = f"{first}.{last}{i}@example.com".lower().encode()
            card: bytes | None = rng.choice(CARDS)
        else:
            email = f"user_{first.lower()}_{i}".encode()
            card = f"ORD-2024-{i:06d}".encode() if i % 10 else None
        amount = f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}".encode()
        out.append(data_row([str(i).encode(), f"{first} {last}".encode(), email, card, amount]))
    return b"".join(out)



@contextmanager
def python_fallbacks() -> Iterator[None]:
    """What runs when the C modules are not built."""
    module = vars(decode)  # decode._walk_native is an import alias, which mypy does not count as an attribute
    saved = bulk._native, module["_walk_native"]
    bulk._native, module["_walk_native"] = None, None
    try:
        yield
    finally:
        bulk._native, module["_walk_native"] = saved


def plans() -> dict[str, ResultPlan]:
    detectors = expand_detectors(["all"])
    marked = (ColumnPattern.parse("c.email"), ColumnPattern.parse("c.card"))
    kinds = {"id": Kind.NOT_TEXT, "name": Kind.TEXT, "email": Kind.TEXT, "card": Kind.TEXT, "amount": Kind.NOT_TEXT}
    columns = [Column(c, (ColumnName("public", "c", c),), True, k) for c, k in kinds.items()]
    out = {}
    for label, rules in (("columns+detectors", [MaskRule("pii", Style.PARTIAL, marked, detectors)]),
                         ("detectors", [MaskRule("pii", Style.PARTIAL, (), detectors)])):
        masking = MaskingPolicy(rules, key=b"k" * 32).for_session("c", [])[0]
        assert masking is not None
        out[label] = ResultPlan(masking, columns)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.3)
    args = ap.parse_args()
    repeat: int = args.repeat
    seconds: float = args.seconds
    per = 1000 / int(args.rows) * 1e6  # seconds per call -> us per 1,000 rows

    def timed(fn: Callable[[], object]) -> float:
        return best(fn, repeat, seconds) * per

    def line(name: str, py: float, c: float, note: str = "") -> None:
        print(f"{name:<40} {py:>10.1f} {c:>10.1f} {py / c:>8.1f}x  {note}")

    prefilter = Prefilter(BUILTIN_DETECTORS.values())
    scanner = Scanner(BUILTIN_DETECTORS.values())
    bits = prefilter.native_bits
    print(f"{args.rows} rows; us per 1,000 rows")
    print(f"{'':<40} {'Python':>10} {'C':>10} {'speed-up':>9}")
    for kind, buf in (("PII", rows(args.rows, True)), ("plain", rows(args.rows, False))):
        print(f"--- {kind}: {len(buf) / 1000:.1f} KB")
        want = decode.data_row_walk(buf, COLUMNS)
        if _datarow.walk(buf, COLUMNS) != want:
            raise SystemExit("the C walk disagrees with data_row_walk")
        line("walk (5 columns)", timed(functools.partial(decode.data_row_walk, buf, COLUMNS)),
             timed(functools.partial(_datarow.walk, buf, COLUMNS)))

        _, offsets = want
        width = 2 * len(COLUMNS)
        cols = {c: (offsets[2 * c :: width], offsets[2 * c + 1 :: width]) for c in (EMAIL, CARD, NAME)}
        py_out, c_out = bytearray(buf), bytearray(buf)
        for c in (EMAIL, CARD):
            bulk.partial_many_py(py_out, *cols[c])
            _bulk.partial_many(c_out, *cols[c])
        if py_out != c_out:
            raise SystemExit("the C partial_many disagrees with partial_many_py")

        def mask_py(buf: bytes = buf, cols: dict[int, tuple[list[int], list[int]]] = cols) -> None:
            out = bytearray(buf)
            for c in (EMAIL, CARD):
                bulk.partial_many_py(out, *cols[c])

        def mask_c(buf: bytes = buf, cols: dict[int, tuple[list[int], list[int]]] = cols) -> None:
            out = bytearray(buf)
            for c in (EMAIL, CARD):
                _bulk.partial_many(out, *cols[c])

        copy = timed(functools.partial(bytearray, buf))
        line("partial_many (email + card)", timed(mask_py) - copy, timed(mask_c) - copy,
             f"(a copy of the buffer, {copy:.1f} us, taken out)")

        starts, ends = cols[NAME]
        if bulk.candidates_py(buf, starts, ends, prefilter) != _bulk.candidates(buf, starts, ends, bits, 0):
            raise SystemExit("the C candidates disagrees with candidates_py")
        line("candidates (name)", timed(functools.partial(bulk.candidates_py, buf, starts, ends, prefilter)),
             timed(functools.partial(_bulk.candidates, buf, starts, ends, bits, 0)))

        # whole_kinds over the email and card columns: 2 values a row
        ws = cols[EMAIL][0] + cols[CARD][0]
        we = cols[EMAIL][1] + cols[CARD][1]
        py_kinds = bulk.whole_kinds_py(buf, ws, we, scanner)
        c_kinds = _bulk.whole_kinds(buf, ws, we, bits, 0)
        if any(c not in (p, bulk.UNSURE) for p, c in zip(py_kinds, c_kinds, strict=True)):
            raise SystemExit("the C whole_kinds claims a kind whole_kinds_py does not give")
        py_us = timed(functools.partial(bulk.whole_kinds_py, buf, ws, we, scanner))
        c_us = timed(functools.partial(_bulk.whole_kinds, buf, ws, we, bits, 0))
        known = sum(k >= 0 for k in c_kinds)
        line("whole_kinds (email + card)", py_us, c_us,
             f"({py_us / 2:.0f} and {c_us / 2:.1f} ns a value; C knew {known} of {len(ws)}, "
             f"Python {sum(k >= 0 for k in py_kinds)})")
        py_out, c_out = bytearray(buf), bytearray(buf)
        bulk.partial_kinds_py(py_out, ws, we, c_kinds)
        _bulk.partial_kinds(c_out, ws, we, c_kinds, 0)
        if py_out != c_out:
            raise SystemExit("the C partial_kinds disagrees with partial_kinds_py")

        def kinds_py(buf: bytes = buf, ws: list[int] = ws, we: list[int] = we, kinds: list[int] = c_kinds) -> None:
            bulk.partial_kinds_py(bytearray(buf), ws, we, kinds)

        def kinds_c(buf: bytes = buf, ws: list[int] = ws, we: list[int] = we, kinds: list[int] = c_kinds) -> None:
            _bulk.partial_kinds(bytearray(buf), ws, we, kinds, 0)

        line("partial_kinds (email + card)", timed(kinds_py) - copy, timed(kinds_c) - copy,
             f"(a copy of the buffer, {copy:.1f} us, taken out)")

        for label, plan in plans().items():
            native_out = plan.mask_rows(buf, ROWS, {})
            with python_fallbacks():
                if plan.mask_rows(buf, ROWS, {}) != native_out:
                    raise SystemExit(f"mask_rows ({label}) differs with and without the C modules")
                py = timed(functools.partial(plan.mask_rows, buf, ROWS, {}))
            line(f"mask_rows, {label}", py, timed(functools.partial(plan.mask_rows, buf, ROWS, {})),
                 "" if native_out is not buf else "(nothing to mask)")


if __name__ == "__main__":
    main()
