"""The recorder stages records from any thread without a lock and commits them under one: every record staged
reaches the journal exactly once, a ``record`` call's writes stay together, and order is kept per thread."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from wardgate.audit.journal import Journal, decode
from wardgate.audit.recorder import Recorder
from wardgate.store import Store
from wardgate.store.db import Write


def test_records_from_many_threads_are_journaled_once_each(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    journal = Journal(tmp_path / "journal", "test")
    rec = Recorder(store, journal)
    per_thread = 3000
    stop = threading.Event()

    def stage(t: int) -> None:
        for i in range(per_thread):
            if i % 3:
                rec.record_insert("statements", (t, i))
            else:  # two writes that must land side by side
                rec.record(Write("events", {"t": t, "i": i, "part": 0}), Write("events", {"t": t, "i": i, "part": 1}))

    def commit_often() -> None:
        while not stop.is_set():
            rec.commit()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        committers = [threading.Thread(target=commit_often) for _ in range(2)]
        stagers = [threading.Thread(target=stage, args=(t,)) for t in range(4)]
        for th in committers + stagers:
            th.start()
        for th in stagers:
            th.join()
        stop.set()
        for th in committers:
            th.join()
    finally:
        sys.setswitchinterval(old)
    rec.commit()
    journal.close(remove=False)
    writes, end = decode(journal.path.read_bytes(), limit=10**9)
    assert end == journal.path.stat().st_size == journal.offset
    seen: dict[int, list[int]] = {t: [] for t in range(4)}
    i = 0
    while i < len(writes):
        w = writes[i]
        if w.table == "statements":
            t, n = w.values
            seen[t].append(n)
            i += 1
        else:
            pair = writes[i + 1]
            assert w.values["part"] == 0 and pair.values == {**w.values, "part": 1}  # type: ignore[index]
            seen[w.values["t"]].append(w.values["i"])  # type: ignore[index]
            i += 2
    assert seen == {t: list(range(per_thread)) for t in range(4)}  # each once, in each thread's order
