"""Benchmark: inline result masking (issue 5). Direct PostgreSQL vs wardgate with masking off and on, interleaved.

    .venv/bin/python bench/masking.py [--seconds 8] [--reps 3] [--rounds 1] [--quick] [--only TEXT]
                                      [--json PATH] [--plain-ref FORMAT] [--seed N]

Two 1,000-row tables in a fresh database on the local PostgreSQL (127.0.0.1:5432, trust):

- ``bench_customers(id, name, email, card, amount)``: every row holds PII (distinct e-mail addresses, Luhn-valid
  Visa/Mastercard test numbers, grouped or contiguous);
- ``bench_plain(id, name, handle, ref, amount)``: no PII at all (checked with ``Scanner.builtin()`` at setup).

Four targets, each wardgate its own process (same config as bench/run.py otherwise: SQLite store, default rule
pack, audit on, plaintext listener): ``direct``; ``masking off`` (no ``masking`` key); ``masking on`` (a rule
masking ``bench_customers.email`` and ``.card`` whole and running all 13 built-in detectors over every text
column, style partial); ``detectors only`` (a rule with ``detect: [all]`` and no columns). Every workload runs
against every target in a shuffled order per repetition; reported are medians (and the TPS spread) over
repetitions, the ratio to direct and **the ratio to wardgate with masking off**, latency, and the gateway's CPU
microseconds per transaction (with its audit shipper).

The ratio to masking off is given twice: the ratio of the medians, and **the median of the paired ratios**, one per
round, each a target's TPS over masking off's in the same round (minutes apart at most, so that a change in the
machine's speed between rounds cancels). The verdicts use the paired one. Why: on this shared machine the TPS of
one target moves by 30-70% between runs of one repetition, more than the 10% in question, and the ratio of two
medians taken over different moments carries that spread; a round's two runs share its moment. ``--rounds`` runs
the matrix that many times per set of fresh gateways (``--reps``), so that a run gives ``reps x rounds`` pairs.

Each repetition starts its three gateways afresh, in a shuffled order. Why: a process keeps what it drew at start
(where its memory lies, so which of its hot objects share cache sets), and one process per target for the whole
run counted that draw in every repetition. Two gateways whose main processes count the same instructions per
transaction (masking on and detectors only on plain rows: 825,000 and 816,000) differed by 9% in TPS over a run,
one way or the other from run to run; with fresh processes the draw is one more thing the median is taken over.

Before timing and again after, a guard fetches both queries through each gateway: the masking gateways must not
return any raw e-mail or card of the table (and must return the plain table unchanged), the masking-off gateway
must return everything raw. After the run, the gateways' logs are checked for tracebacks, errors and warnings.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import Target, Workload, drop_database, run_interleaved, setup_database, start_wardgate

from wardgate.masking import Scanner
from wardgate.masking.detectors import luhn

ROWS = 1000
PII_QUERY = "SELECT id, name, email, card, amount FROM bench_customers;\n"
PLAIN_QUERY = "SELECT id, name, handle, ref, amount FROM bench_plain;\n"
PLAIN_REF = "ORD-2024-{:06d}"  # the plain table's ref column; --plain-ref changes it

WORKLOADS = [
    Workload("PII rows, 4 clients", ("-M", "extended"), 4, PII_QUERY),
    Workload("plain rows, 4 clients", ("-M", "extended"), 4, PLAIN_QUERY),
    Workload("PII rows, 16 clients", ("-M", "extended"), 16, PII_QUERY),
    Workload("plain rows, 16 clients", ("-M", "extended"), 16, PLAIN_QUERY),
]

DIRECT, OFF, ON, DETECT = "direct", "masking off", "masking on", "detectors only"
MASKING_ON = {"rules": [{"name": "pii", "columns": ["bench_customers.email", "bench_customers.card"],
                         "detect": ["all"], "style": "partial"}]}
DETECTORS_ONLY = {"rules": [{"name": "pii-detect", "detect": ["all"], "style": "partial"}]}

FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Élodie", "Fatima", "Günter", "Hiro", "Ingrid", "José", "Kwame", "Lena",
         "Mateo", "Nadia", "Øyvind", "Priya", "Quinn", "Rosa", "Søren", "Tomás", "Uma", "Zoë", "Aiden", "Grace"]
LAST = ["Smith", "Müller", "García", "Rossi", "Dubois", "Nakamura", "Kowalski", "O'Brien", "Jensen", "Silva",
        "Nguyen", "Ivanova", "Andersson", "Okafor", "Bianchi", "Novák", "Johnson", "Kim", "Patel", "Fischer"]
# Published Visa / Mastercard test numbers (Luhn-valid, never real cards).
CARDS = ["4111111111111111", "4012888888881881", "4242424242424242", "4000056655665556", "4005519200000004",
         "4217651111111119", "5555555555554444", "5105105105105100", "5200828282828210", "5454545454545454",
         "2223003122003222", "2221000000000009"]


def _ascii(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if c.isascii() and c.isalpha()).lower()


def customer_rows(rng: random.Random) -> list[tuple[int, str, str, str, str]]:
    rows = []
    for i in range(1, ROWS + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        card = CARDS[i % len(CARDS)]
        if i % 2:  # half grouped "4111 1111 1111 1111", half contiguous
            card = " ".join(card[k:k + 4] for k in range(0, 16, 4))
        rows.append((i, f"{first} {last}", f"{_ascii(first)}.{_ascii(last)}{i}@example.com", card,
                     f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}"))
    return rows


def plain_rows(rng: random.Random, ref: str = PLAIN_REF) -> list[tuple[int, str, str, str, str]]:
    return [(i, f"{rng.choice(FIRST)} {rng.choice(LAST)}", f"user_{rng.randint(1, 99999)}", ref.format(i),
             f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}") for i in range(1, ROWS + 1)]


def setup_tables(db: str, role: str, ref: str) -> list[tuple[int, str, str, str, str]]:
    """Create and fill both tables; check that the PII is found whole by the detectors and the plain table has none."""
    rng = random.Random(5)
    customers, plain = customer_rows(rng), plain_rows(rng, ref)
    scanner = Scanner.builtin()
    for c in CARDS:
        assert luhn(c.encode()), c
    for r in customers:
        for v, det in ((r[2], "email"), (r[3], "credit_card")):
            found = scanner.find(v.encode())
            assert [(m.start, m.end, m.detector) for m in found] == [(0, len(v.encode()), det)], (v, found)
    assert len({r[2] for r in customers}) == ROWS
    with psycopg.connect(f"host=127.0.0.1 port=5432 dbname={db} user={role}", autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_customers(id int PRIMARY KEY, name text, email text, card text, "
                     "amount numeric(10,2))")
        conn.execute("CREATE TABLE bench_plain(id int PRIMARY KEY, name text, handle text, ref text, "
                     "amount numeric(10,2))")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_customers VALUES (%s, %s, %s, %s, %s::numeric)", customers)
            cur.executemany("INSERT INTO bench_plain VALUES (%s, %s, %s, %s, %s::numeric)", plain)
        conn.execute("VACUUM ANALYZE bench_customers")
        conn.execute("VACUUM ANALYZE bench_plain")
        # Every value of the plain table as PostgreSQL sends it in text format: nothing for any detector.
        for row in conn.execute("SELECT id::text, name, handle, ref, amount::text FROM bench_plain"):
            for v in row:
                assert not scanner.find(v.encode()), (v, scanner.find(v.encode()))
    return customers


def fetch(t: Target, query: str) -> list[tuple[str | None, ...]]:
    """Rows of ``query`` through ``t``, every value as the text PostgreSQL (or the gateway) sent."""
    conninfo = dict(host="127.0.0.1", port=t.port, user=t.user, dbname=t.dbname, sslmode="disable")
    if t.password:
        conninfo["password"] = t.password
    with psycopg.connect(**conninfo) as conn, conn.cursor() as cur:  # type: ignore[arg-type]
        cur.execute(query)  # extended protocol, like pgbench -M extended
        return [tuple(None if v is None else str(v) for v in r) for r in cur.fetchall()]


def guard(direct: Target, off: Target, masked: list[Target], customers: list[tuple[int, str, str, str, str]],
          quiet: bool = False) -> None:
    """Refuse to time a gateway that does not mask (or masks what it should not)."""
    raw = fetch(direct, PII_QUERY)
    plain = fetch(direct, PLAIN_QUERY)
    assert len(raw) == ROWS and len(plain) == ROWS
    if fetch(off, PII_QUERY) != raw or fetch(off, PLAIN_QUERY) != plain:
        raise SystemExit("guard: wardgate with masking off did not return the PII table unchanged")
    secrets_ = {r[2] for r in customers} | {r[3] for r in customers} | {r[3].replace(" ", "") for r in customers}
    for t in masked:
        rows = fetch(t, PII_QUERY)
        if len(rows) != ROWS:
            raise SystemExit(f"guard: {t.name}: {len(rows)} rows, expected {ROWS}")
        text = "\n".join("\t".join(v or "" for v in r) for r in rows)
        leaked = sorted(s for s in secrets_ if s in text)
        if leaked:
            raise SystemExit(f"guard: {t.name} returned {len(leaked)} raw values, e.g. {leaked[:3]}")
        for got, want in zip(rows, raw, strict=True):
            # partial keeps lengths; id, name and amount are untouched
            if (got[0], got[1], got[4]) != (want[0], want[1], want[4]) or \
                    [len(v or "") for v in got] != [len(v or "") for v in want] or \
                    got[2] == want[2] or got[3] == want[3]:
                raise SystemExit(f"guard: {t.name}: unexpected row {got} for {want}")
        if fetch(t, PLAIN_QUERY) != plain:
            raise SystemExit(f"guard: {t.name} changed values of the PII-free table")
        if not quiet:
            print(f"guard: {t.name}: no raw e-mail or card in {ROWS} rows (e.g. {rows[0][2]!r}, {rows[0][3]!r}); "
                  "plain table unchanged", file=sys.stderr)
    if not quiet:
        print("guard: masking off returns both tables raw", file=sys.stderr)


def log_problems(work: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for log in sorted(work.glob("**/wardgate.log")):
        lines = log.read_text(errors="replace").splitlines()
        bad = [ln for ln in lines if any(k in ln for k in ("Traceback", "ERROR", "CRITICAL", "WARNING", "Error:"))]
        if bad:
            out[str(log.parent.relative_to(work))] = bad[:20]
    return out


def prefilter_status() -> str:
    """Whether the native prefilter imports, and whether wardgate.masking itself loaded it (i.e. uses it)."""
    Scanner.builtin().may_match(b"x")
    used = "wardgate.masking._prefilter" in sys.modules
    try:
        import wardgate.masking._prefilter  # noqa: F401
    except ImportError as exc:
        return f"not importable ({exc})"
    return "imported, loaded by wardgate.masking" if used else "imported, but not loaded by wardgate.masking"


def revision() -> str:
    """The commit the gateways run (with "+changes" when wardgate/ differs from it), for the record."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "wardgate"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="duration of each pgbench run")
    ap.add_argument("--reps", type=int, default=3, help="repetitions, each with fresh gateways")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of the interleaved matrix per repetition (each gives one paired ratio per target)")
    ap.add_argument("--quick", action="store_true", help="2 s runs, 1 repetition (a smoke test of the harness)")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--only", help="run only the workloads whose name contains this text (e.g. '4 clients')")
    ap.add_argument("--seed", type=int, default=None,
                    help="the orders of starts and runs (default: a new one each run, printed with the table)")
    ap.add_argument("--plain-ref", default=PLAIN_REF,
                    help="format of bench_plain.ref, {} is the row number (default %(default)s, which the prefilter "
                         "clears; 'ORD{:06d}' holds 'AA99', the prefilter's IBAN trigger, so every run is scanned)")
    args = ap.parse_args()
    workloads = [w for w in WORKLOADS if not args.only or args.only in w.name]
    if not workloads:
        raise SystemExit(f"no workload matches {args.only!r}")
    if args.quick:
        args.seconds, args.reps, args.rounds = 2, 1, 1
    prefilter = prefilter_status()
    args.revision = revision()
    print(f"wardgate {args.revision}; wardgate.masking._prefilter: {prefilter}", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="wardgate-bench-masking-"))
    db, role = setup_database(1)  # the pgbench tables are not used; scale 1 is the cheapest
    procs: list[subprocess.Popen[bytes]] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        customers = setup_tables(db, role, args.plain_ref)
        direct = Target(DIRECT, 5432, role, db, None, None)
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        # A new order each run, so that no target keeps the same places (its neighbours, its place after a start)
        # run after run, as a fixed seed made it; --seed repeats one.
        if args.seed is None:
            args.seed = random.SystemRandom().randrange(1 << 30)
        rnd = random.Random(args.seed)
        for rep in range(args.reps):
            configs = [(OFF, None), (ON, MASKING_ON), (DETECT, DETECTORS_ONLY)]
            rnd.shuffle(configs)
            by_name = {DIRECT: direct}
            for name, masking in configs:
                d = work / f"rep{rep + 1}" / name.replace(" ", "-")
                d.mkdir(parents=True)
                proc, t = start_wardgate(d, db, role, name, extra={"masking": masking} if masking else None)
                procs.append(proc)
                by_name[name] = t
            guard(by_name[DIRECT], by_name[OFF], [by_name[ON], by_name[DETECT]], customers, quiet=rep > 0)
            targets = [by_name[n] for n in (DIRECT, OFF, ON, DETECT)]
            for key, runs in run_interleaved(targets, workloads, args.rounds, args.seconds, work,
                                             seed=rnd.randrange(1 << 30), progress=False).items():
                results.setdefault(key, []).extend(runs)
            # the gateways must still be masking after their repetition
            guard(by_name[DIRECT], by_name[OFF], [by_name[ON], by_name[DETECT]], customers, quiet=True)
            for p in procs:
                if p.poll() is not None:
                    print(f"WARNING: a wardgate exited during the run (code {p.returncode})", file=sys.stderr)
            stop(procs)
            print(f"repetition {rep + 1}/{args.reps} done (fresh gateways)", file=sys.stderr)
        problems = log_problems(work)
        for name, lines in problems.items():
            print(f"WARNING: {name}/wardgate.log has {len(lines)} error lines:", *lines, sep="\n  ", file=sys.stderr)
        report(results, workloads, args, started, prefilter, problems)
    finally:
        stop(procs)
        drop_database(db, role)
        shutil.rmtree(work, ignore_errors=True)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop the gateways (each ships its journal and signs its chain on SIGTERM), and forget them."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    procs.clear()


def paired(results: dict[tuple[str, str], list[dict[str, float]]], workload: str, target: str) -> list[float]:
    """One ratio per round: the target's TPS over masking off's in the same round. Every round runs every target
    once, so the two lists are in step."""
    mine, off = results[(workload, target)], results[(workload, OFF)]
    assert len(mine) == len(off)
    return [a["tps"] / b["tps"] for a, b in zip(mine, off, strict=True)]


def spread(values: list[float]) -> str:
    """The middle half of the values (first to third quartile), or the value alone."""
    if len(values) < 2:
        return f"{values[0]:.2f}"
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{q1:.2f}-{q3:.2f}"


def report(results: dict[tuple[str, str], list[dict[str, float]]], workloads: list[Workload],
           args: argparse.Namespace, started: str, prefilter: str, problems: dict[str, list[str]]) -> None:
    def med(w: str, t: str, k: str) -> float:
        return statistics.median(r[k] for r in results[(w, t)])

    pairs = args.reps * args.rounds
    print(f"\n{started}, wardgate {args.revision}, {args.reps} repetitions (fresh gateways) x {args.rounds} rounds x "
          f"{args.seconds} s per run, medians, --seed {args.seed}; "
          f"bench_plain.ref {args.plain_ref.format(123)!r}; wardgate.masking._prefilter {prefilter}\n")
    head = ("workload", "target", "TPS", "TPS min-max", "x direct", "x masking off (of medians)",
            f"x masking off, paired: median of {pairs} (middle half)", "latency ms", "CPU us/tx")
    rows = []
    verdicts = []
    for w in workloads:
        direct_tps, off_tps = med(w.name, DIRECT, "tps"), med(w.name, OFF, "tps")
        for t in (DIRECT, OFF, ON, DETECT):
            tps = med(w.name, t, "tps")
            all_tps = [r["tps"] for r in results[(w.name, t)]]
            gw = t != DIRECT
            ratios = paired(results, w.name, t) if t in (ON, DETECT) else []
            rows.append((w.name, t, f"{tps:,.0f}", f"{min(all_tps):,.0f}-{max(all_tps):,.0f}",
                         f"{tps / direct_tps:.2f}", f"{tps / off_tps:.2f}" if gw else "",
                         f"{statistics.median(ratios):.2f} ({spread(ratios)})" if ratios else "",
                         f"{med(w.name, t, 'latency_ms'):.3f}", f"{med(w.name, t, 'cpu_us_per_tx'):.0f}" if gw else ""))
            if ratios:
                need = 0.35 if w.name.startswith("PII") else 0.9
                ratio = statistics.median(ratios)
                below = sum(r < need for r in ratios)
                verdicts.append(f"- {w.name}, {t}: {ratio:.2f} x masking off, paired (target >= {need}): "
                                f"{'met' if ratio >= need else 'NOT met'}; {below} of {len(ratios)} rounds below it")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("\nIssue 5's targets (PII query >= 0.35 x masking off, plain query >= 0.9 x masking off):")
    print("\n".join(verdicts))
    if args.json:
        args.json.write_text(json.dumps({
            "started": started, "revision": args.revision, "seconds": args.seconds, "reps": args.reps,
            "rounds": args.rounds, "seed": args.seed,
            "prefilter": prefilter,
            "plain_ref": args.plain_ref,
            "log_problems": problems,
            "results": {f"{w}|{t}": v for (w, t), v in results.items()},
        }, indent=1))


if __name__ == "__main__":
    main()
