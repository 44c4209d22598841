"""Where one client's latency goes: wakeups, scheduling delays and each process's time to its next hand-off.

    .venv/bin/python bench/wakeups.py [--seconds 3] [--reps 3] [--halt-poll-ns N]    # perf (linux-perf), root

At one client a select-only transaction is a chain of hand-offs: pgbench wakes the proxy, the proxy wakes the
PostgreSQL backend, the backend wakes the proxy, the proxy wakes pgbench (direct: two hand-offs). The added
latency of a proxy is its time from being switched in to the write that wakes the next process, twice, plus what
each extra wakeup costs the machine. On a virtual machine the second part can dwarf the first: a wakeup of a task
on the other CPU waits for that CPU to be woken (an interprocessor interrupt through the hypervisor). This tool
records the scheduler (``perf sched record``) during a one-client select-only run against every target (direct,
pgbouncer, the framing relay, wardgate, wardgate without its audit shipper), interleaved over repetitions, and
prints, per target and as medians over the repetitions:

- the scheduling delay of a wakeup (woken until running), apart for a wakee on the waker's CPU and on the other;
- hand-offs a transaction: how many wakeups of the chain's tasks, and how many of them crossed CPUs;
- waited a transaction: the time the chain's tasks spent runnable but not running (after a wakeup, or preempted
  by another task: the audit shipper, a kernel thread), summed, a mean where the delays above are medians;
- wakeups a transaction onto a CPU busy with a task outside the chain (the shipper, mostly), and their mean delay:
  such a wakeup cannot be seen by a polling idle CPU, it takes an interrupt (through the hypervisor, on a guest);
- the proxy's time from switch-in to the wakeup of the server (a query on its way) and of the client (an answer
  on its way): the processing a proxy puts on the critical path, which is what a faster machine keeps; and its
  run time a transaction (on the critical path or not).

This splits an added-latency figure into the proxy's own part and the machine's, so that a one-client line
measured where wakeups cost 30 us can be read against one set where they cost 5.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: the same targets, started the same way

_WAKE = re.compile(r"\s*([\d.]+) \[(\d+)\]\s+(\S+?)\[(\d+)(?:/\d+)?\]\s+awakened: (\S+?)\[(\d+)")
# a task's switch-out: its wait, scheduling delay and run time (ms); the idle task has no pid
_RUN = re.compile(r"\s*([\d.]+) \[(\d+)\]\s+(\S+?)(?:\[(\d+)(?:/\d+)?\])?\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")


@dataclass
class Chain:
    """What one recording says about the hand-offs between client, proxy and server (all times in us)."""

    same_cpu_delay: list[float] = field(default_factory=list)
    other_cpu_delay: list[float] = field(default_factory=list)
    to_server: list[float] = field(default_factory=list)  # the proxy: switch-in -> wakeup of the server
    to_client: list[float] = field(default_factory=list)  # the proxy: switch-in -> wakeup of the client
    wakeups: int = 0
    crossed: int = 0
    busy_cpu_delay: list[float] = field(default_factory=list)  # woken where another task (not idle) ran before
    waited: float = 0.0  # every run of a chain task: time runnable but not running (woken or preempted), summed
    proxy_ran: float = 0.0  # the proxy's run time, summed


def analyse(timehist: Iterable[str], client: str, server: str, proxy: str | None) -> Chain:
    """Read ``perf sched timehist -w`` lines. ``client``, ``server``, ``proxy``: the pids of pgbench, the
    PostgreSQL backend and the proxy's serving process (None: direct). A wakeup is counted when one of the chain's
    tasks wakes another; its delay is the wakee's scheduling delay on its next run."""
    chain = Chain()
    members = {client, server} | ({proxy} if proxy else set())
    started: dict[str, float] = {}  # cpu -> when the task now running there was switched in
    previous: dict[str, str | None] = {}  # cpu -> the pid that ran there last (None: the idle task)
    pending: dict[str, str] = {}  # wakee pid -> the waker's cpu
    for line in timehist:
        m = _WAKE.match(line)
        if m:
            at, cpu, waker, wakee = float(m.group(1)), m.group(2), m.group(4), m.group(6)
            if waker in members and wakee in members:
                pending[wakee] = cpu
                if waker == proxy and cpu in started:
                    since = (at - started[cpu]) * 1e6
                    (chain.to_server if wakee == server else chain.to_client).append(since)
            continue
        m = _RUN.match(line)
        if not m:
            continue
        at, cpu, pid, delay = float(m.group(1)), m.group(2), m.group(4), float(m.group(6)) * 1000
        started[cpu] = at  # this line is the task's switch-out: whatever runs next starts now
        if pid in members:
            chain.waited += delay
            if pid == proxy:
                chain.proxy_ran += float(m.group(7)) * 1000
        waker_cpu = pending.pop(pid, None) if pid else None
        if waker_cpu is not None:
            chain.wakeups += 1
            if waker_cpu == cpu:
                chain.same_cpu_delay.append(delay)
            else:
                chain.crossed += 1
                chain.other_cpu_delay.append(delay)
            before = previous.get(cpu, "")
            if before is not None and before not in members and before != "":
                chain.busy_cpu_delay.append(delay)  # it had to take the CPU from another task: an interrupt
        previous[cpu] = pid
    return chain


def busiest(timehist: list[str], comm: str) -> str:
    """The pid of the task named ``comm`` with the most runs (the backend serving the benchmark's connection)."""
    counts: dict[str, int] = {}
    for line in timehist:
        m = _RUN.match(line)
        if m and m.group(3) == comm:
            counts[m.group(4)] = counts.get(m.group(4), 0) + 1
    if not counts:
        raise SystemExit(f"no {comm} task in the recording")
    return max(counts, key=lambda p: counts[p])


def record(target: bench.Target, seconds: int, work: Path) -> tuple[dict[str, float], Chain]:
    data = work / "sched.data"
    workload = next(w for w in bench.WORKLOADS if w.name == "select-only, 1 client")
    perf = subprocess.Popen(["perf", "sched", "record", "-o", str(data)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        result = bench.run_pgbench(target, workload, seconds, work)
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
    lines = subprocess.run(["perf", "sched", "timehist", "-i", str(data), "-w"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    chain = analyse(lines, busiest(lines, "pgbench"), busiest(lines, "postgres"),
                    None if target.pid is None else str(target.pid))
    result["tx"] = result["tps"] * seconds
    return result, chain


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--halt-poll-ns", type=int, default=None,
                    help="poll this long before an idle CPU halts, for the run (bench/run.py says why)")
    args = ap.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (Debian: apt-get install linux-perf)")
    work = Path(tempfile.mkdtemp(prefix="wardgate-wakeups-"))
    work.chmod(0o755)
    db, role = bench.setup_database(10)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for d in ("wardgate", "noaudit", "pgbouncer"):
            (work / d).mkdir()
        gw_proc, gw = bench.start_wardgate(work / "wardgate", db, role)
        na_proc, na = bench.start_wardgate(work / "noaudit", db, role, "wardgate, audit off",
                                           launcher=[sys.executable, str(bench.ROOT / "bench" / "no_audit.py")])
        pb_proc, pb = bench.start_pgbouncer(work / "pgbouncer", db, role)
        fr_proc, fr = bench.start_framing_relay(db, role)
        procs += [gw_proc, na_proc, pb_proc, fr_proc]
        targets = [bench.Target("direct", 5432, role, db, None, None), pb, fr, gw, na]
        warm = next(w for w in bench.WORKLOADS if w.name == "select-only, 1 client")
        for t in targets:
            bench.run_pgbench(t, warm, 1, work)
        runs: dict[str, list[tuple[dict[str, float], Chain]]] = {}
        with bench.halt_poll(args.halt_poll_ns):
            setting = bench.idle_setting()
            for rep in range(args.reps):
                for t in targets:
                    runs.setdefault(t.name, []).append(record(t, args.seconds, work))
                print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr)
        report(runs, args, setting)
    finally:
        bench.clean_up(procs, db, role, work)


def report(runs: dict[str, list[tuple[dict[str, float], Chain]]], args: argparse.Namespace, setting: str) -> None:
    print(f"\nselect-only, 1 client, {args.reps} x {args.seconds} s under perf sched record; medians of the runs' "
          f"medians, us; {setting}\n")
    head = ("target", "latency", "added", "wakeups/tx", "crossed/tx", "delay same CPU", "delay other CPU",
            "waited/tx", "woken on a busy CPU/tx", "its mean delay", "proxy: in -> query out",
            "proxy: in -> answer out", "proxy ran/tx")
    rows = [head]
    direct = _med([r["latency_ms"] for r, _ in runs["direct"]]) * 1000
    for name, rs in runs.items():
        latency = _med([r["latency_ms"] for r, _ in rs]) * 1000
        rows.append((
            name, f"{latency:.0f}", "" if name == "direct" else f"+{latency - direct:.0f}",
            f"{_med([c.wakeups / r['tx'] for r, c in rs]):.2f}", f"{_med([c.crossed / r['tx'] for r, c in rs]):.2f}",
            f"{_med([_med(c.same_cpu_delay) for _, c in rs]):.1f}",
            f"{_med([_med(c.other_cpu_delay) for _, c in rs]):.1f}",
            f"{_med([c.waited / r['tx'] for r, c in rs]):.1f}",
            f"{_med([len(c.busy_cpu_delay) / r['tx'] for r, c in rs]):.3f}",
            f"{_med([statistics.fmean(c.busy_cpu_delay) if c.busy_cpu_delay else 0.0 for _, c in rs]):.0f}",
            "" if name == "direct" else f"{_med([_med(c.to_server) for _, c in rs]):.1f}",
            "" if name == "direct" else f"{_med([_med(c.to_client) for _, c in rs]):.1f}",
            "" if name == "direct" else f"{_med([c.proxy_ran / r['tx'] for r, c in rs]):.1f}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for i, r in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if i == 0:
            print("-|-".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
