"""Classification and decision speed: uncached, cached by text, and a new text of a known shape.

    .venv/bin/python bench/classify.py

Issue 4's budget for a short statement: at most 100 us uncached and 5 us cached. Medians of many runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from wardgate.config import Config
from wardgate.policy import sql
from wardgate.policy.decide import decide_message
from wardgate.policy.rules import Policy

STATEMENTS = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 42",
    "INSERT INTO orders (customer_id, amount) VALUES (7, 19.99) RETURNING id",
    "DELETE FROM sessions WHERE expires_at < now()",
    "WITH d AS (DELETE FROM public.orders WHERE id = 1 RETURNING *) SELECT c.email FROM customers c JOIN d "
    "ON d.customer_id = c.id",
    "SELECT c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' ORDER BY 1",
]


def clear() -> None:
    sql.classify.cache_clear()
    sql._classify_shape.cache_clear()


def median_us(fn: Callable[[], object], n: int, setup: Callable[[], None] | None = None) -> float:
    times = []
    for _ in range(n):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def _fresh_texts(text: str) -> Callable[[], object]:
    """Classify the statement with a new literal each time: the text cache misses, the shape cache hits."""
    counter = iter(range(10**9))
    variant = text.replace("42", "{}").replace("7", "{}")
    return lambda: sql.classify(variant.replace("{}", str(next(counter))))


def main() -> None:
    cfg = Config.model_validate({"listen": {"allow_plaintext": True},
                                 "connections": {"c": {"upstream": "postgresql://u@127.0.0.1:5432/d"}}})
    rules = Policy(cfg).scope("c", ["eng"])
    print(f"{'statement':60} {'uncached':>9} {'new text,':>10} {'cached':>7} {'decide':>7}")
    print(f"{'':60} {'us':>9} {'same shape':>10} {'us':>7} {'cached':>7}")
    for text in STATEMENTS:
        uncached = median_us(lambda t=text: sql.classify(t), 300, clear)  # type: ignore[misc]
        sql.classify(text)
        shape = median_us(_fresh_texts(text), 2000)
        cached = median_us(lambda t=text: sql.classify(t), 20000)  # type: ignore[misc]
        infos = sql.classify(text)
        decide = median_us(lambda i=infos: decide_message(rules, i, {}), 20000)  # type: ignore[misc]
        label = text if len(text) <= 58 else text[:55] + "..."
        print(f"{label:60} {uncached:9.1f} {shape:10.1f} {cached:7.2f} {decide:7.2f}")


if __name__ == "__main__":
    main()
