"""Prefilter throughput on a run of 1,000 DataRows: the Python reference against the C module.

    .venv/bin/python bench/prefilter.py [--rows 1000] [--repeat 7] [--seconds 0.3]

The result masking asks the prefilter about a whole buffer of DataRows before it looks at any value, so the
prefilter's speed on *ordinary* rows (no trigger: the whole buffer is read) is what every result pays; the budget is
about 100 us for 1,000 rows (~110 KB), i.e. 1 GB/s. Buffers:

* ordinary: id, name, note, order code (ORD-00000123), amount (123.45), timestamp ('2024-01-05 10:30:00+00'),
  status. Both answer False: the whole buffer is read.
* PII in the last row: the same rows, the last one with an e-mail address and a card number: read to the end, True.
* PII in every row: e-mail and card columns in each row: True at the first row (the early exit).

Each figure is the best of ``--repeat`` timings, each timing the mean over a loop of about ``--seconds``. All
thirteen built-in detectors are chosen.
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections.abc import Callable

from wardgate.masking import _prefilter
from wardgate.masking.detectors import BUILTIN_DETECTORS, Prefilter
from wardgate.protocols.postgres.encode import data_row

FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Élodie", "Fatima", "Günter", "Hiro", "Ingrid", "José", "Kwame", "Lena"]
LAST = ["Smith", "Müller", "García", "Rossi", "Dubois", "Nakamura", "Kowalski", "O'Brien", "Jensen", "Silva"]
STATUS = ["pending", "paid", "shipped", "delivered", "cancelled", "refunded", "on hold"]
WORDS = ["please", "deliver", "to", "the", "back", "door", "gift", "wrap", "thanks", "call", "before", "arrival",
         "fragile", "leave", "with", "neighbour", "order", "late", "again", "größe", "prüfen"]
CARDS = [b"4111 1111 1111 1111", b"5555555555554444", b"3782 822463 10005", b"4012-8888-8888-1881"]


def ordinary(rng: random.Random, i: int) -> list[bytes | None]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    note = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))).capitalize()
    day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    stamp = f"{day} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00+00"
    return [str(i).encode(), f"{first} {last}".encode(), note.encode(), f"ORD-{i:08d}".encode(),
            f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}".encode(), stamp.encode(), rng.choice(STATUS).encode()]


def with_pii(rng: random.Random, i: int) -> list[bytes | None]:
    row = ordinary(rng, i)
    email = f"{rng.choice(FIRST)}.{rng.choice(LAST)}{i}@example.com".lower().encode()
    return [*row, email, rng.choice(CARDS)]


def buffers(rows: int) -> dict[str, bytes]:
    rng = random.Random(11)
    plain = [data_row(ordinary(rng, i)) for i in range(1, rows + 1)]
    return {
        "ordinary": b"".join(plain),
        "PII in the last row": b"".join([*plain[:-1], data_row(with_pii(rng, rows))]),
        "PII in every row": b"".join(data_row(with_pii(rng, i)) for i in range(1, rows + 1)),
    }


def best(fn: Callable[[], object], repeat: int, seconds: float) -> float:
    """Seconds per call: the best of ``repeat`` loops, each the mean over about ``seconds``."""
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds / 10 or n < 3:  # calibrate the loop length
        fn()
        n += 1
    loops = max(3, int(n * 10))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        times.append((time.perf_counter() - t0) / loops)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.3)
    args = ap.parse_args()

    reference = Prefilter(BUILTIN_DETECTORS.values())
    everything = (1 << len(_prefilter.ORDER)) - 1
    print(f"{'buffer':<22} {'KB':>6} {'answer':>6}  {'reference us':>12} {'MB/s':>7}  {'native us':>9} {'MB/s':>7}"
          f"  {'speed-up':>8}")
    for name, buf in buffers(args.rows).items():
        answer = reference.reference(buf)
        if _prefilter.may_match(buf, everything) is not answer:
            raise SystemExit(f"{name}: the C prefilter disagrees with the reference")
        ref = best(functools.partial(reference.reference, buf), args.repeat, args.seconds)
        nat = best(functools.partial(_prefilter.may_match, buf, everything), args.repeat, args.seconds)
        mb = len(buf) / 1e6
        print(f"{name:<22} {len(buf) / 1000:>6.1f} {answer!s:>6}  {ref * 1e6:>12.1f} {mb / ref:>7.0f}"
              f"  {nat * 1e6:>9.1f} {mb / nat:>7.0f}  {ref / nat:>7.0f}x")


if __name__ == "__main__":
    main()
