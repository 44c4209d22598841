"""The shipper process's collector settings (shipper.quiet_collector): a pass every BATCH_GC_THRESHOLD
allocations, startup's objects frozen out of every pass. What it saves is measured by bench/shipper.py
(--default-gc for the comparison)."""

from __future__ import annotations

import gc

from wardgate.audit.shipper import BATCH_GC_THRESHOLD, quiet_collector


def test_quiet_collector() -> None:
    old = gc.get_threshold()
    try:
        quiet_collector()
        assert gc.get_threshold() == (BATCH_GC_THRESHOLD, 20, 20)
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # cycles are still collected, less often
    finally:
        gc.unfreeze()
        gc.set_threshold(*old)
