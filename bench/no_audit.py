"""`wardgate serve` with its audit shipper switched off, for ``bench/run.py --audit-off`` only.

It was written to switch off the journal too, by patching ``Recorder.commit``. Since the recorder is compiled
(mypyc), its compiled callers call the compiled method directly and never see that patch: the journal is still
written. ``Recorder.start`` is called from interpreted code (server.py), so no shipper starts. What the
"audit off" column measures is therefore the shipper's cost (the store and the hash chain), not the journal
append's. This is not a mode of the product: wardgate has no setting that runs it unrecorded, and this script
exists so that the benchmark needs none.
"""

from __future__ import annotations

from wardgate.audit import recorder


def _no_shipper(self: recorder.Recorder) -> None:
    return None


recorder.Recorder.start = _no_shipper  # type: ignore[method-assign]

if __name__ == "__main__":
    from wardgate.cli import main

    main()
