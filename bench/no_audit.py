"""`wardgate serve` with its audit journal and shipper switched off, for ``bench/run.py --audit-off`` only.

It measures what the audit costs on the relay (the journal append before each answer) and beside it (the
shipper process writing the store and the hash chain). This is not a mode of the product: wardgate has no
setting that runs it unrecorded, and this script exists so that the benchmark needs none.
"""

from __future__ import annotations

from wardgate.audit import recorder


def _discard(self: recorder.Recorder) -> None:
    with self._lock:
        self._staged = []


def _no_shipper(self: recorder.Recorder) -> None:
    return None


recorder.Recorder.commit = _discard  # type: ignore[method-assign]
recorder.Recorder.start = _no_shipper  # type: ignore[method-assign]

if __name__ == "__main__":
    from wardgate.cli import main

    main()
