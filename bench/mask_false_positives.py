"""What each built-in detector finds in every column of the demo dataset: hits in the columns that hold PII,
and false positives everywhere else.

    .venv/bin/python bench/mask_false_positives.py [--dsn "host=127.0.0.1 port=5432 dbname=postgres user=postgres"]

Loads the demo dataset (``wardgate demo load``: 200 customers, 1,000 orders) into a database of its own, reads
every column as text exactly as a text-format client would receive it, scans each value with each detector
alone, prints a markdown table, and drops the database.
"""

from __future__ import annotations

import argparse
import secrets
from collections import Counter

import psycopg
from psycopg import sql

from wardgate.demo import load
from wardgate.masking import BUILTIN_DETECTORS, Scanner

# The detector each PII column is meant to be found by; any other hit is a false positive.
EXPECTED = {("customers", "email"): "email", ("customers", "phone"): "phone",
            ("customers", "card_number"): "credit_card"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default="host=127.0.0.1 port=5432 dbname=postgres user=postgres")
    args = ap.parse_args()
    db = f"wg_fp_{secrets.token_hex(3)}"
    load(args.dsn, db, db)
    scanners = {name: Scanner([name]) for name in BUILTIN_DETECTORS}
    try:
        conninfo = psycopg.conninfo.make_conninfo(args.dsn, dbname=db, user=db)
        rows_out = []
        with psycopg.connect(conninfo) as conn:
            cols = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                                "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position").fetchall()
            for table, column in cols:
                values = [v for (v,) in conn.execute(
                    sql.SQL("SELECT {}::text FROM {}").format(sql.Identifier(column), sql.Identifier(table)))
                    if v is not None]
                hits: Counter[str] = Counter()
                whole: Counter[str] = Counter()
                for v in values:
                    b = v.encode()
                    for name, sc in scanners.items():
                        found = sc.find(b)
                        if found:
                            hits[name] += 1
                            if len(found) == 1 and found[0].start == 0 and found[0].end == len(b):
                                whole[name] += 1
                expected = EXPECTED.get((table, column))
                fp = {k: n for k, n in hits.items() if k != expected}
                rows_out.append((f"{table}.{column}", len(values), expected or "-",
                                 f"{whole[expected]}/{len(values)}" if expected else "-",
                                 ", ".join(f"{k} {n}" for k, n in sorted(fp.items())) or "none"))
        print("| column | values | meant for | found whole | other detectors (false positives) |")
        print("|---|---|---|---|---|")
        for r in rows_out:
            print("| " + " | ".join(str(x) for x in r) + " |")
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(db)))


if __name__ == "__main__":
    main()
