"""The demo dataset: a small shop whose customers have emails, phone numbers and card numbers.

Deterministic (seeded), so screenshots, docs and tests agree; generated here so nothing is downloaded.
"""

from __future__ import annotations

import random

import psycopg
from psycopg import sql

FIRST = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Edsger",
    "Margaret",
    "Dennis",
    "Frances",
    "Ken",
    "Radia",
    "Donald",
    "Shafi",
    "Leslie",
    "Sophie",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Niklaus",
]
LAST = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Liskov",
    "Dijkstra",
    "Hamilton",
    "Ritchie",
    "Allen",
    "Thompson",
    "Perlman",
    "Knuth",
    "Goldwasser",
    "Lamport",
    "Wilson",
    "Berners-Lee",
    "Lamarr",
    "Backus",
    "Johnson",
    "Wirth",
]
CITIES = ["Lisbon", "Berlin", "Austin", "Toronto", "Nairobi", "Osaka", "Lyon", "Porto", "Denver", "Leeds"]
STATUSES = ["paid", "paid", "paid", "shipped", "refunded", "pending"]


def luhn_complete(prefix: str) -> str:
    """Append the check digit that makes ``prefix`` pass the Luhn test."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return prefix + str((10 - total % 10) % 10)


def customers(n: int = 200, seed: int = 7) -> list[tuple[int, str, str, str, str, str]]:
    rnd = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        email = f"{first}.{last}{i}@example.com".lower()
        phone = f"+1-555-{rnd.randint(100, 999):03d}-{rnd.randint(0, 9999):04d}"
        card = luhn_complete("4" + "".join(str(rnd.randint(0, 9)) for _ in range(14)))
        out.append((i, f"{first} {last}", email, phone, card, rnd.choice(CITIES)))
    return out


def load(dsn: str, database: str, role: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(role)))
    conninfo = psycopg.conninfo.make_conninfo(dsn, dbname=database, user=role)
    rnd = random.Random(11)
    people = customers()
    with psycopg.connect(conninfo) as conn:
        conn.execute("""
            CREATE TABLE customers (
                id integer PRIMARY KEY,
                name text NOT NULL,
                email text NOT NULL UNIQUE,
                phone text NOT NULL,
                card_number text NOT NULL,
                city text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )""")
        conn.execute("""
            CREATE TABLE orders (
                id integer PRIMARY KEY,
                customer_id integer NOT NULL REFERENCES customers(id),
                amount numeric(10, 2) NOT NULL,
                status text NOT NULL,
                ordered_at timestamptz NOT NULL
            )""")
        with conn.cursor() as cur:
            with cur.copy("COPY customers (id, name, email, phone, card_number, city) FROM STDIN") as cp:
                for row in people:
                    cp.write_row(row)
            with cur.copy("COPY orders (id, customer_id, amount, status, ordered_at) FROM STDIN") as cp:
                for i in range(1, 1001):
                    cp.write_row(
                        (
                            i,
                            rnd.randint(1, len(people)),
                            f"{rnd.uniform(5, 900):.2f}",
                            rnd.choice(STATUSES),
                            f"2026-{rnd.randint(1, 11):02d}-{rnd.randint(1, 28):02d}",
                        )
                    )
    return {"customers": len(people), "orders": 1000}
