"""Detector throughput on realistic column values: each value scanned on its own, and all of them in one buffer.

    .venv/bin/python bench/mask_detectors.py [--values 100000] [--repeat 5]

The values are what result rows hold: names (some with accents), amounts, dates, timestamps, statuses, order
numbers, UUIDs, ZIP codes, short free text, and e-mail addresses, card numbers, phone numbers in a few percent
of them. Best of ``--repeat`` runs. The baseline is the simple approach the design notes measured (≈ 360k
values/s here): a few compiled regexes and a Luhn check, run on each value.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable

from wardgate.masking import Scanner, Style, custom, mask, mask_text
from wardgate.masking.detectors import luhn

FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Élodie", "Fatima", "Günter", "Hiro", "Ingrid", "José", "Kwame", "Lena",
         "Mateo", "Nadia", "Øyvind", "Priya", "Quinn", "Rosa", "Søren", "Tomás", "Uma", "Zoë"]
LAST = ["Smith", "Müller", "García", "Rossi", "Dubois", "Nakamura", "Kowalski", "O'Brien", "Jensen", "Silva",
        "Nguyen", "Ivanova", "Andersson", "Okafor", "Bianchi", "Novák"]
STATUS = ["pending", "paid", "shipped", "delivered", "cancelled", "refunded", "on hold", "active", "inactive"]
WORDS = ["please", "deliver", "to", "the", "back", "door", "gift", "wrap", "thanks", "call", "before", "arrival",
         "fragile", "leave", "with", "neighbour", "order", "late", "again", "größe", "prüfen"]
DOMAINS = ["example.com", "mail.example.org", "shop.co.uk", "gmail.com", "firma.de"]
CARDS = [b"4111 1111 1111 1111", b"5555555555554444", b"3782 822463 10005", b"4012-8888-8888-1881"]


def _value(rng: random.Random) -> bytes:
    r = rng.random()
    first, last = rng.choice(FIRST), rng.choice(LAST)
    if r < 0.04:
        return f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}".lower().encode()
    if r < 0.06:
        return rng.choice(CARDS)
    if r < 0.09:
        return rng.choice([f"+1 (555) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                           f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
                           f"555-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}"]).encode()
    if r < 0.25:
        return f"{first} {last}".encode()
    if r < 0.38:
        return f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}".encode()
    if r < 0.48:
        return f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}".encode()
    if r < 0.58:
        return (f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}+00").encode()
    if r < 0.70:
        return rng.choice(STATUS).encode()
    if r < 0.80:
        return str(rng.randint(1, 10**9)).encode()
    if r < 0.85:
        return f"ORD-{rng.randint(100000, 999999)}".encode()
    if r < 0.90:
        return str(random.Random(rng.random()).getrandbits(128).to_bytes(16, "big").hex()).encode()
    if r < 0.93:
        return f"{rng.randint(10000, 99999)}".encode()
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))).capitalize().encode()


def make_values(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [_value(rng) for _ in range(n)]


_BASE_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_BASE_CARD = re.compile(rb"\b(?:\d[ -]?){13,19}\b")
_BASE_PHONE = re.compile(rb"\+\d[\d ()-]{7,18}\d|\(?\d{3}\)?[ .-]?\d{3}[.-]\d{4}")


def baseline(values: list[bytes]) -> int:
    found = 0
    for v in values:
        found += _BASE_EMAIL.search(v) is not None
        m = _BASE_CARD.search(v)
        if m and luhn(bytes(c for c in m.group() if 48 <= c <= 57)):
            found += 1
        found += _BASE_PHONE.search(v) is not None
    return found


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--values", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    values = make_values(args.values)
    size = sum(map(len, values))
    every = Scanner.builtin()
    three = Scanner.builtin("email", "credit_card", "phone")
    with_custom = Scanner([*every.detectors, custom("employee_id", rb"\bEMP-[0-9]{6}\b")])
    emails = [v for v in values if b"@" in v]
    key = b"bench-key"
    modes: list[tuple[str, Callable[[], int]]] = [
        ("baseline: 3 regexes + Luhn, each value", lambda: baseline(values)),
        ("email+card+phone: find, each value", lambda: sum(len(three.find(v)) for v in values)),
        ("email+card+phone: one buffer", lambda: len(three.find(b"\x00".join(values)))),
        ("all 13: search_any, each value", lambda: sum(every.search_any(v) for v in values)),
        ("all 13: find, each value", lambda: sum(len(every.find(v)) for v in values)),
        ("all 13: one buffer (join + find)", lambda: len(every.find(b"\x00".join(values)))),
        ("all 13: find_many (offsets per value)", lambda: len(every.find_many(values))),
        ("all 13 + 1 custom regex: one buffer", lambda: len(with_custom.find(b"\x00".join(values)))),
        ("all 13: mask_text partial, each value", lambda: sum(
            mask_text(v, every, Style.PARTIAL)[0] is not v for v in values)),
        ("all 13: mask_text hash, each value", lambda: sum(
            mask_text(v, every, Style.HASH, key)[0] is not v for v in values)),
    ]
    print(f"{len(values):,} values, {size / 1e6:.2f} MB, best of {args.repeat}")
    print(f"{'mode':42} {'ms':>8} {'values/s':>12} {'MB/s':>7} {'found':>7}")
    for label, fn in modes:
        seconds, found = best(fn, args.repeat)
        print(f"{label:42} {seconds * 1e3:8.1f} {len(values) / seconds:12,.0f} {size / seconds / 1e6:7.1f} {found:7}")
    # A column known to hold e-mail addresses is masked without scanning; and where every value matches, the
    # per-match work (validation, Match objects) is what a scan costs.
    n = len(emails)
    print(f"\n{n:,} e-mail values (every value a match)")
    for label, fn in [
        ("mask(): partial, each value", lambda: sum(mask(v, "email", Style.PARTIAL) is not None for v in emails)),
        ("mask(): hash, each value", lambda: sum(mask(v, "email", Style.HASH, key) is not None for v in emails)),
        ("all 13: find, each value", lambda: sum(len(every.find(v)) for v in emails)),
        ("all 13: one buffer (join + find)", lambda: len(every.find(b"\x00".join(emails)))),
    ]:
        seconds, found = best(fn, args.repeat)
        print(f"{label:42} {seconds * 1e3:8.1f} {n / seconds:12,.0f} {'':>7} {found:7}")


if __name__ == "__main__":
    main()
