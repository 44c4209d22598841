"""bench/wakeups.py reads ``perf sched timehist -w``: the lines below are a real recording (wardgate at one client,
pids 7325 the gateway, 7340 pgbench, 7342 the PostgreSQL backend), cut to one and a half transactions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import wakeups  # bench/ is not a package: found through the path above

TIMEHIST = """\
           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
     720.646611 [0000]  <idle>                              0.149      0.000      0.103
     720.646633 [0000]  python[7325]                                                     awakened: pgbench[7340]
     720.646638 [0000]  python[7325]                        0.112      0.032      0.027
     720.646655 [0000]  pgbench[7340]                       0.130      0.005      0.016
     720.646670 [0000]  python[7325]                                                     awakened: postgres[7342]
     720.646688 [0000]  python[7325]                        0.016      0.000      0.032
     720.646701 [0001]  <idle>                              0.087      0.000      0.100
     720.646771 [0001]  postgres[7342]                                                   awakened: python[7325]
     720.646793 [0001]  postgres[7342]                      0.100      0.030      0.092
     720.646802 [0000]  <idle>                              0.076      0.000      0.114
     720.646821 [0000]  python[7325]                                                     awakened: pgbench[7340]
     720.646827 [0000]  python[7325]                        0.114      0.031      0.024
     720.646843 [0000]  pgbench[7340]                       0.171      0.005      0.016
     720.646850 [0001]  kworker/1:1[99]                     0.500      0.002      0.001
"""


def test_analyse_reads_a_recording() -> None:
    lines = TIMEHIST.splitlines()
    assert wakeups.busiest(lines, "pgbench") == "7340"
    assert wakeups.busiest(lines, "postgres") == "7342"
    c = wakeups.analyse(lines, "7340", "7342", "7325")
    # wakeups within the chain: gateway -> pgbench (twice, same CPU), gateway -> postgres (crossed CPUs),
    # postgres -> gateway (crossed); the gateway's wakeup of postgres is seen by postgres's next run only
    # when that run is in the recording, and it is (720.646793)
    assert c.wakeups == 4
    assert c.crossed == 2
    assert sorted(c.same_cpu_delay) == [5.0, 5.0]
    assert sorted(c.other_cpu_delay) == pytest.approx([30.0, 31.0])
    # the gateway: switched in when the idle task left CPU 0 (720.646611 and .646802), woke pgbench 22 and 19 us
    # later; switched in again after pgbench (.646655), woke postgres 15 us later
    assert c.to_client == pytest.approx([22.0, 19.0], abs=0.01)
    assert c.to_server == pytest.approx([15.0], abs=0.01)
    assert c.proxy_ran == pytest.approx(27 + 32 + 24)
    assert c.waited == pytest.approx(32 + 5 + 0 + 30 + 31 + 5)  # the kworker is not in the chain
    assert c.busy_cpu_delay == []  # every wakee took its CPU from the idle task or from the chain


def test_a_wakeup_onto_a_busy_cpu() -> None:
    lines = TIMEHIST.replace("720.646701 [0001]  <idle>", "720.646701 [0001]  python[7326]").splitlines()
    c = wakeups.analyse(lines, "7340", "7342", "7325")
    assert c.busy_cpu_delay == [30.0]  # postgres, woken while the shipper (7326) ran on CPU 1


def test_analyse_direct_has_no_proxy() -> None:
    lines = TIMEHIST.replace("python[7325]", "other[1]").splitlines()
    c = wakeups.analyse(lines, "7340", "7342", None)
    assert c.wakeups == 0 and c.to_client == [] and c.to_server == [] and c.proxy_ran == 0


def test_busiest_without_the_task() -> None:
    with pytest.raises(SystemExit, match="no mysql task"):
        wakeups.busiest(TIMEHIST.splitlines(), "mysql")


def test_halt_poll_restores_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/run.py --halt-poll-ns changes a machine setting for a run: it must be put back, also on error."""
    import run

    knob = tmp_path / "guest_halt_poll_ns"
    knob.write_text("0\n")
    monkeypatch.setattr(run, "HALT_POLL", knob)
    with run.halt_poll(200000):
        assert knob.read_text() == "200000"
    assert knob.read_text() == "0"
    with pytest.raises(RuntimeError), run.halt_poll(50000):
        assert knob.read_text() == "50000"
        raise RuntimeError("a run that fails")
    assert knob.read_text() == "0"
    with run.halt_poll(None):  # no option: the setting is not touched
        assert knob.read_text() == "0"


def test_halt_poll_refuses_without_the_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import run

    monkeypatch.setattr(run, "HALT_POLL", tmp_path / "absent")
    with pytest.raises(SystemExit, match="not haltpoll"), run.halt_poll(200000):
        pass
