"""Benchmark: direct PostgreSQL vs wardgate vs pgbouncer vs a bare framing relay, interleaved, medians and ratios.

    .venv/bin/python bench/run.py [--seconds 8] [--reps 3] [--scale 10] [--quick] [--only TEXT]

Everything runs on this machine: the local PostgreSQL (127.0.0.1:5432, trust), a wardgate process (SQLite store,
classification, default rule pack and audit on, plaintext listener so that all paths skip TLS alike), pgbouncer
(session mode) and ``framing_relay.py``, a Python relay that only frames messages (the floor a Python gateway
starts from). Each repetition runs every workload against every target in a shuffled order, so drift in the
machine affects all targets alike. Reported: median TPS, ratio to direct, median latency, latency added over
direct, and CPU microseconds per transaction spent in the middle process (gateway with its audit shipper,
pgbouncer, or the relay).

"added us, paired" is the median over repetitions of each repetition's own difference (the target's latency minus
direct's in the same repetition), beside the difference of the medians: the machine's speed moves between
repetitions (direct select-only at 1 client ran 75-103 us within minutes), and a repetition's runs share its moment.

``--halt-poll-ns N`` (root; a KVM guest whose idle driver is haltpoll) sets how long an idle CPU polls before it
halts, for the run, and restores it after. With 0 (the setting of the virtual machines this was written on) every
wakeup of a task on the other, idle CPU waits for the hypervisor to wake that CPU: ~30 us, twice a transaction
direct and twice more through any proxy, which makes pgbouncer add 30-66 us at one client where the issue measured
12. With 200000 (the kernel's default for the driver) an idle CPU polls for 200 us first and sees a wakeup in 3-4
us; a wakeup onto a CPU busy with another task still takes an interrupt through the hypervisor. Every target runs
under the same setting (bench/wakeups.py measures the wakeups).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PG = {"host": "127.0.0.1", "port": 5432}
ADMIN = "host=127.0.0.1 port=5432 dbname=postgres user=postgres"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def idle_setting() -> str:
    """How this machine's idle CPUs wait, for the report: what a one-client latency depends on most here."""
    driver = Path("/sys/devices/system/cpu/cpuidle/current_driver")
    name = driver.read_text().strip() if driver.exists() else "unknown"
    if name == "haltpoll" and HALT_POLL.exists():
        return f"idle driver haltpoll, guest_halt_poll_ns={HALT_POLL.read_text().strip()}"
    return f"idle driver {name}"


@contextmanager
def halt_poll(ns: int | None) -> Iterator[None]:
    """Run with the haltpoll idle driver polling ``ns`` nanoseconds before halting (None: leave it), then put the
    old value back."""
    if ns is None:
        yield
        return
    if not HALT_POLL.exists():
        raise SystemExit("--halt-poll-ns: this machine's idle driver is not haltpoll (a KVM guest's)")
    old = HALT_POLL.read_text().strip()
    try:
        HALT_POLL.write_text(str(ns))
    except OSError as exc:
        raise SystemExit(f"--halt-poll-ns: cannot set {HALT_POLL} ({exc.strerror}); run as root") from None
    try:
        yield
    finally:
        HALT_POLL.write_text(old)


@dataclass(frozen=True)
class Workload:
    name: str
    args: tuple[str, ...]
    clients: int
    script: str | None = None


WORKLOADS = [
    Workload("select-only, 1 client", ("-S", "-M", "extended"), 1),
    Workload("select-only, 16 clients", ("-S", "-M", "extended"), 16),
    Workload("TPC-B, 1 client", ("-M", "extended"), 1),
    Workload("TPC-B, 16 clients", ("-M", "extended"), 16),
    Workload("1000-row result, 4 clients", ("-M", "extended"), 4,
             "SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN 1 AND 1000;\n"),
]


@dataclass
class Target:
    name: str
    port: int
    user: str
    dbname: str
    password: str | None
    pid: int | None  # the middle process whose CPU is measured


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


def cpu_seconds(pid: int | None) -> tuple[float, float]:
    """CPU time of a process and of its live children (wardgate's audit shipper counts as wardgate's cost, and
    is reported apart too)."""
    if pid is None:
        return 0.0, 0.0
    own = kids = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / CLK_TCK
        if p == pid:
            own = used
        else:
            kids += used
    return own, kids


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def run_pgbench(t: Target, w: Workload, seconds: int, workdir: Path) -> dict[str, float]:
    args = ["pgbench", "-h", "127.0.0.1", "-p", str(t.port), "-U", t.user, "-n", "-T", str(seconds),
            "-c", str(w.clients), "-j", str(min(w.clients, 2)), *w.args]
    if w.script:
        script = workdir / "bench.sql"
        script.write_text(w.script)
        args += ["-f", str(script)]
    args.append(t.dbname)
    env = {**os.environ, "PGSSLMODE": "disable"}
    if t.password:
        env["PGPASSWORD"] = t.password
    cpu0 = cpu_seconds(t.pid)
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=seconds + 60)
    cpu1 = cpu_seconds(t.pid)
    if res.returncode != 0:
        raise SystemExit(f"pgbench against {t.name} failed:\n{res.stderr}\n{res.stdout}")
    tps = float(re.search(r"tps = ([\d.]+)", res.stdout).group(1))  # type: ignore[union-attr]
    lat = float(re.search(r"latency average = ([\d.]+) ms", res.stdout).group(1))  # type: ignore[union-attr]
    tx = int(re.search(r"number of transactions actually processed: (\d+)", res.stdout).group(1))  # type: ignore[union-attr]
    own, kids = (cpu1[0] - cpu0[0]) / tx * 1e6, (cpu1[1] - cpu0[1]) / tx * 1e6
    return {"tps": tps, "latency_ms": lat, "cpu_us_per_tx": own + kids, "child_cpu_us_per_tx": kids}


def run_interleaved(targets: list[Target], workloads: list[Workload], reps: int, seconds: int,
                    work: Path, seed: int = 1, progress: bool = True) -> dict[tuple[str, str], list[dict[str, float]]]:
    """Every workload against every target, in a shuffled order per repetition, so that drift in the machine
    affects all targets alike: (workload, target) -> one result per repetition."""
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    rnd = random.Random(seed)
    for rep in range(reps):
        for w in workloads:
            order = targets[:]
            rnd.shuffle(order)
            for t in order:
                results.setdefault((w.name, t.name), []).append(run_pgbench(t, w, seconds, work))
        if progress:
            print(f"repetition {rep + 1}/{reps} done", file=sys.stderr)
    return results


def setup_database(scale: int) -> tuple[str, str]:
    db, role = f"wg_bench_{secrets.token_hex(3)}", f"wg_bench_{secrets.token_hex(3)}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(role)))
    subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), "-h", "127.0.0.1", "-U", role, db], check=True,
                   capture_output=True)
    return db, role


def drop_database(db: str, role: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def start_wardgate(work: Path, db: str, role: str, name: str = "wardgate",
                   policy: dict[str, object] | None = None,
                   extra: dict[str, object] | None = None,
                   launcher: list[str] | None = None,
                   startup_timeout: float = 20) -> tuple[subprocess.Popen[bytes], Target]:
    """A wardgate process in ``work``; ``extra`` holds more top-level config keys (e.g. ``masking``); ``launcher``
    replaces ``python -m wardgate.cli`` for the serving process (bench/no_audit.py, bench/instructions.py)."""
    port = free_port()
    cfg = work / "wardgate.yaml"
    cfg.write_text(json.dumps({
        "store": f"sqlite:///{work / 'wardgate.db'}",
        "data_dir": str(work / "data"),
        "listen": {"postgres": f"127.0.0.1:{port}", "allow_plaintext": True},
        "connections": {"bench": {"upstream": f"postgresql://{role}@127.0.0.1:5432/{db}"}},
        "policy": policy or {},
        **(extra or {}),
    }))
    wardgate = [sys.executable, "-m", "wardgate.cli"]
    log = open(work / "wardgate.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([*(launcher or wardgate), "serve", "-c", str(cfg), "--log-level", "warning"], stdout=log,
                            stderr=subprocess.STDOUT)
    wait_port(port, startup_timeout)
    token = subprocess.run([*wardgate, "token", "create", "-c", str(cfg), "--user", "bench", "--ttl", "2h"],
                           check=True, capture_output=True, text=True).stdout.strip()
    return proc, Target(name, port, "bench", "bench", token, proc.pid)


def start_framing_relay(db: str, role: str) -> tuple[subprocess.Popen[bytes], Target]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "framing_relay.py"), str(port)])
    wait_port(port)
    return proc, Target("framing relay", port, role, db, None, proc.pid)


def start_pgbouncer(work: Path, db: str, role: str) -> tuple[subprocess.Popen[bytes], Target]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    port = free_port()
    (work / "userlist.txt").write_text(f'"{role}" ""\n')
    ini = work / "pgbouncer.ini"
    ini.write_text(f"""[databases]
{db} = host=127.0.0.1 port=5432 dbname={db}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {work / 'userlist.txt'}
pool_mode = session
max_client_conn = 200
default_pool_size = 40
logfile = {work / 'pgbouncer.log'}
""")
    user_args: list[str] = []
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        work.parent.chmod(0o755)
        shutil.chown(work, "postgres")
        for f in work.iterdir():
            shutil.chown(f, "postgres")
        user_args = ["-u", "postgres"]
    proc = subprocess.Popen([binary, *user_args, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, Target("pgbouncer", port, role, db, None, proc.pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="duration of each pgbench run")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the whole interleaved matrix")
    ap.add_argument("--scale", type=int, default=10, help="pgbench scale factor")
    ap.add_argument("--quick", action="store_true", help="2 s runs, 1 repetition (a smoke test of the harness)")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--only", help="run only the workloads whose name contains this text (e.g. 'select-only')")
    ap.add_argument("--policy-off", action="store_true",
                    help="also run a wardgate without the default rule pack, to measure what the pack costs")
    ap.add_argument("--audit-off", action="store_true",
                    help="also run a wardgate whose audit journal and shipper are switched off (bench/no_audit.py), "
                         "to measure what the audit costs")
    ap.add_argument("--replay-off", action="store_true",
                    help="also run a wardgate that keeps no result samples (audit.replay.rows: 0)")
    ap.add_argument("--halt-poll-ns", type=int, default=None,
                    help="poll this long before an idle CPU halts, for the run (haltpoll guests; module docstring)")
    args = ap.parse_args()
    workloads = [w for w in WORKLOADS if not args.only or args.only in w.name]
    if not workloads:
        raise SystemExit(f"no workload matches {args.only!r}")
    if args.quick:
        args.seconds, args.reps = 2, 1
    work = Path(tempfile.mkdtemp(prefix="wardgate-bench-"))
    db, role = setup_database(args.scale)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        (work / "wardgate").mkdir()
        gw_proc, gw = start_wardgate(work / "wardgate", db, role)
        procs.append(gw_proc)
        pgb_dir = work / "pgbouncer"
        pgb_dir.mkdir()
        pb_proc, pb = start_pgbouncer(pgb_dir, db, role)
        procs.append(pb_proc)
        fr_proc, fr = start_framing_relay(db, role)
        procs.append(fr_proc)
        targets = [Target("direct", 5432, role, db, None, None), pb, fr, gw]
        if args.policy_off:
            (work / "wardgate-nopack").mkdir()
            np_proc, np = start_wardgate(work / "wardgate-nopack", db, role, "wardgate, no rules",
                                         {"builtin": False, "unparsed": "allow"})
            procs.append(np_proc)
            targets.append(np)
        if args.audit_off:
            (work / "wardgate-noaudit").mkdir()
            na_proc, na = start_wardgate(work / "wardgate-noaudit", db, role, "wardgate, audit off",
                                         launcher=[sys.executable, str(ROOT / "bench" / "no_audit.py")])
            procs.append(na_proc)
            targets.append(na)
        if args.replay_off:
            (work / "wardgate-noreplay").mkdir()
            nr_proc, nr = start_wardgate(work / "wardgate-noreplay", db, role, "wardgate, no samples",
                                         extra={"audit": {"replay": {"rows": 0}}})
            procs.append(nr_proc)
            targets.append(nr)
        with halt_poll(args.halt_poll_ns):
            setting = idle_setting()
            results = run_interleaved(targets, workloads, args.reps, args.seconds, work)
        report(results, workloads, args, setting)
    finally:
        clean_up(procs, db, role, work)


def clean_up(procs: list[subprocess.Popen[bytes]], db: str, role: str, work: Path) -> None:
    """Stop the targets, drop the benchmark's database and role, remove the work folder."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    drop_database(db, role)
    shutil.rmtree(work, ignore_errors=True)


def report(
    results: dict[tuple[str, str], list[dict[str, float]]], workloads: list[Workload], args: argparse.Namespace,
    setting: str = "",
) -> None:
    def med(w: str, t: str, k: str) -> float:
        return statistics.median(r[k] for r in results[(w, t)])

    print(f"\n{args.reps} repetitions x {args.seconds} s per run, pgbench scale {args.scale}, medians; {setting}\n")
    head = ("workload", "target", "TPS", "x direct", "latency ms", "added us", "added us, paired", "CPU us/tx",
            "of it shipper", "wardgate/pgbouncer", "wardgate/relay")
    rows = []
    for w in workloads:
        direct_tps = med(w.name, "direct", "tps")
        direct_lat = med(w.name, "direct", "latency_ms")
        names = ["direct", "pgbouncer", "framing relay", "wardgate"]
        if args.policy_off:
            names.append("wardgate, no rules")
        if args.audit_off:
            names.append("wardgate, audit off")
        if args.replay_off:
            names.append("wardgate, no samples")
        for t in names:
            tps = med(w.name, t, "tps")
            lat = med(w.name, t, "latency_ms")
            gw = t.startswith("wardgate")
            vs_pgb = f"{tps / med(w.name, 'pgbouncer', 'tps'):.2f}" if gw else ""
            vs_relay = f"{tps / med(w.name, 'framing relay', 'tps'):.2f}" if gw else ""
            cpu = f"{med(w.name, t, 'cpu_us_per_tx'):.0f}" if t != "direct" else ""
            shipper = f"{med(w.name, t, 'child_cpu_us_per_tx'):.0f}" if gw else ""
            paired = [(r["latency_ms"] - d["latency_ms"]) * 1000
                      for r, d in zip(results[(w.name, t)], results[(w.name, "direct")], strict=True)]
            rows.append((w.name, t, f"{tps:,.0f}", f"{tps / direct_tps:.2f}", f"{lat:.3f}",
                         f"{(lat - direct_lat) * 1000:+.0f}" if t != "direct" else "",
                         f"{statistics.median(paired):+.0f}" if t != "direct" else "", cpu, shipper, vs_pgb,
                         vs_relay))
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    print(" | ".join(h.ljust(n) for h, n in zip(head, widths, strict=True)))
    print("-|-".join("-" * n for n in widths))
    for r in rows:
        print(" | ".join(str(c).ljust(n) for c, n in zip(r, widths, strict=True)))
    if args.json:
        args.json.write_text(json.dumps({f"{w}|{t}": v for (w, t), v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
