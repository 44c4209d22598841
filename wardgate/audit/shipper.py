"""The audit shipper: moves journaled records into the store, in a process of its own.

The gateway's only audit work on the hot path is appending to its journal. This process tails that journal and
writes complete records to the store in large transactions, committing the journal offset in the same
transaction, so every record reaches the store exactly once, whatever crashes and restarts. Keeping it out of
the gateway's process keeps the store's cost off the relay's interpreter lock.

    python -m wardgate.audit.shipper --journal PATH      (store URL in WARDGATE_SHIPPER_STORE)

It also feeds the live audit sinks (``audit/sinks/``), with records only once they are committed to the store.

The journal grows for as long as its gateway process runs (it is removed when the gateway stops with everything
shipped). What the store has committed is given back to the filesystem as it goes: the shipped prefix becomes a
hole (``fallocate`` with ``FALLOC_FL_PUNCH_HOLE``), so the journal's offsets never change but its disk use stays
near the unshipped part, instead of ~300 bytes a statement for the process's whole life (6 MB/s under load).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import functools
import gc
import json
import logging
import mmap
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import Store, StoreError
from ..store.db import Write
from .journal import JournalCorrupt, decode
from .samples import prepare
from .signing import Checkpointer, audit_key

if TYPE_CHECKING:
    from .sinks import SinkHub

log = logging.getLogger("wardgate.audit.shipper")
STORE_ENV = "WARDGATE_SHIPPER_STORE"

#: The shipped part of a journal is released in whole steps of this many bytes: one system call per MiB shipped.
RELEASE_STEP = 1 << 20
#: The journal is read through a mapping of the file from the first unshipped byte; once that is this far into
#: the mapping, the shipper maps afresh from there (bounding the address space of a journal that grows for months).
REMAP_AFTER = 64 << 20
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


@functools.cache
def _fallocate() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    libc.fallocate.restype = ctypes.c_int
    return libc.fallocate


def punch_hole(fd: int, start: int, length: int) -> bool:
    """Free the file's blocks in [start, start + length), keeping its size (the range then reads as zeros).
    False where the filesystem or platform cannot (the journal then keeps its shipped part on disk until its
    gateway stops); OSError for any other refusal."""
    if not sys.platform.startswith("linux"):
        return False
    if _fallocate()(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, start, length) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS):
        return False
    raise OSError(err, os.strerror(err))


class Shipper:
    """Ships one journal file from the offset the store last committed for it."""

    def __init__(self, store: Store, path: Path, batch_size: int = 5000,
                 checkpointer: Checkpointer | None = None, sinks: SinkHub | None = None) -> None:
        self.store = store
        self.checkpointer = checkpointer
        self.sinks = sinks
        self.path = path
        self.name = path.name
        self.batch_size = batch_size
        self.offset = store.journal_offset(self.name)
        self.shipped = 0  # records shipped by this shipper, all calls together
        self.stop_at = -1  # a file offset the shipper does not read past (-1: none; drain, before a torn record)
        self._fd = os.open(path, os.O_RDONLY)
        self._map: mmap.mmap | None = None
        self._map_base = 0  # the file offset of the mapping's first byte
        self.released = 0  # the journal's first bytes given back to the filesystem (shipped, then punched out)
        try:
            self._release_fd: int | None = os.open(path, os.O_WRONLY)
        except OSError as exc:
            log.warning("the shipped part of %s cannot be released (%s); it stays on disk until the gateway stops",
                        path, exc.strerror or exc)
            self._release_fd = None

    def ship_available(self) -> int:
        """Write the complete records now in the journal, in transactions of up to ``batch_size``, until one is
        smaller (the end of what was written when it was read); return how many. Raises StoreError,
        JournalCorrupt."""
        shipped = 0
        while True:
            writes, consumed = self._read()
            if not writes:
                if self.checkpointer is not None:
                    self.checkpointer.moved(None)  # an idle chain is signed once its interval has passed
                return shipped
            # the journal's name is the chain's: one chain per gateway process, no lock shared with replicas
            prepare(writes)  # result samples: wire values to text, here rather than on the relay
            head = self.store.write(writes, (self.name, self.offset + consumed), chain=self.name)
            if self.checkpointer is not None:
                self.checkpointer.moved(head)
            if self.sinks is not None:
                self.sinks.offer(writes)  # durable now: only committed records reach a sink
            self.offset += consumed
            shipped += len(writes)
            self.shipped += len(writes)
            self.release_shipped()
            if len(writes) < self.batch_size:
                # Caught up with the journal as it was when this batch was read. Reading on at once would
                # store the few records that arrived meanwhile, a transaction each (the journal is read live,
                # through a mapping): the caller waits its interval first, so each transaction carries more.
                return shipped

    def _read(self) -> tuple[list[Write], int]:
        """The next batch of complete records from the shipped offset, and the bytes they take. A record that fails
        its checksum is read once more, 20 ms later, before the journal is called damaged: the gateway copies a
        batch with its first length word last, after a fence, yet a reader could still see a length word half
        written (one that straddles a cache line) or, on a weakly ordered CPU, a payload's bytes older than its
        length; the copy takes microseconds."""
        data = self._mapped()
        if data is None:
            return [], 0
        start = self.offset - self._map_base
        stop = -1 if self.stop_at < 0 else self.stop_at - self._map_base
        try:
            writes, end = decode(data, start, self.batch_size, stop)
        except JournalCorrupt:
            time.sleep(0.02)
            try:
                writes, end = decode(data, start, self.batch_size, stop)
            except JournalCorrupt as exc:
                at = self._map_base + exc.at
                raise JournalCorrupt(f"record at offset {at} of {self.name} fails its checks", at) from None
        return writes, end - start

    def _mapped(self) -> mmap.mmap | None:
        """A read-only mapping of the journal from (about) the shipped offset to its current end, or None when
        no record can have been written past the offset yet. Mapped afresh when the file has grown (the gateway
        reserves space a MiB at a time) or the offset is far into the mapping."""
        size = os.fstat(self._fd).st_size
        current = self._map
        if current is not None:
            if self._map_base + len(current) == size and self.offset - self._map_base < REMAP_AFTER:
                return current
            current.close()
            self._map = None
        if size - self.offset < 8:
            return None
        base = self.offset - self.offset % mmap.ALLOCATIONGRANULARITY
        self._map = mmap.mmap(self._fd, size - base, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=base)
        self._map_base = base
        return self._map

    def torn_at(self, at: int) -> bool:
        """Is the record at file offset ``at`` (one that fails its checks) torn by a crash of the machine:
        nothing follows it but zeros (reserved journal pages that never reached the disk)? Only ever asked of the
        journal of a gateway that is gone (``drain``)."""
        data = self._mapped()
        if data is None or at < self._map_base:
            return False
        rel = at - self._map_base
        size = int.from_bytes(data[rel : rel + 4], "big")
        return not data[rel + 8 + size :].strip(b"\0")

    def release_shipped(self) -> None:
        """Punch out the whole steps of the journal the store now holds. Only what the store committed (the
        offset moves after ``store.write``), so a crash at any point leaves every unshipped byte in place; a
        restarted shipper starts at the store's offset and never reads the hole."""
        upto = self.offset - self.offset % RELEASE_STEP
        if self._release_fd is None or upto <= self.released:
            return
        try:
            done = punch_hole(self._release_fd, self.released, upto - self.released)
        except OSError as exc:
            done = False
            log.warning("the shipped part of %s cannot be released (%s); it stays on disk until the gateway stops",
                        self.path, exc.strerror or exc)
        else:
            if not done:
                log.info("the filesystem of %s cannot punch holes; its shipped part stays on disk until the "
                         "gateway stops", self.path)
        if done:
            self.released = upto
        else:
            os.close(self._release_fd)
            self._release_fd = None

    def report_losses(self, final: bool = False) -> None:
        """Write the sinks' loss events that are due, on this journal's chain, so a live copy's gaps are in the
        tamper-evident audit itself. Raises StoreError (the reports stay due)."""
        if self.sinks is None:
            return
        now = time.monotonic()
        reports = self.sinks.loss_reports(now, final)
        if not reports:
            return
        writes = [Write("events", r.event(time.time())) for r in reports]
        head = self.store.write(writes, chain=self.name)
        self.sinks.reported(reports, now)
        for r in reports:
            log.warning("audit sink %s has lost %d record(s) so far (%d dropped, %d failed, %d abandoned)",
                        r.sink, r.counts.lost, r.counts.dropped, r.counts.failed, r.counts.abandoned)
        if self.checkpointer is not None:
            self.checkpointer.moved(head)
        self.sinks.offer(writes)  # the healthy sinks carry the news too

    def stop_sinks(self) -> None:
        """Drain the sinks (bounded), then record their final losses if the store takes them."""
        if self.sinks is None:
            return
        self.sinks.close()
        try:
            self.report_losses(final=True)
        except StoreError as exc:
            log.error("the audit sinks' final losses could not be recorded: %s", exc)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        os.close(self._fd)
        if self._release_fd is not None:
            os.close(self._release_fd)
            self._release_fd = None


def drain(store: Store, path: Path, checkpointer: Checkpointer | None = None) -> int:
    """Ship a journal to its end (a journal left by a gateway that is gone); returns records shipped. Its chain
    ends there: its head is signed."""
    shipper = Shipper(store, path, checkpointer=checkpointer)
    try:
        try:
            return shipper.ship_available()
        except JournalCorrupt as exc:
            if not shipper.torn_at(exc.at):
                raise
            shipper.stop_at = exc.at  # what precedes the torn record ships; the torn one cannot
            shipper.ship_available()
            log.warning("%s ends in a record torn by a crash of the machine (at offset %d, nothing but zeros after "
                        "it): the %d records before it are shipped, that one is lost", path.name, exc.at,
                        shipper.shipped)
            return shipper.shipped
    finally:
        if checkpointer is not None:
            checkpointer.sign()
        shipper.close()


# A gen-0 collection every this many allocations (the default is 700); see quiet_collector.
BATCH_GC_THRESHOLD = 50_000


def quiet_collector() -> None:
    """Tune the cyclic garbage collector for a process that holds a batch of records while it stores them.

    A batch is up to 5,000 records of ~6 container objects each, all alive until the batch is stored. Under the
    default threshold the collector ran every 700 of them, each pass scanning the batch so far (and older
    generations in turn): the journal's decode took 4.3 us a record with it and 1.4 without, ~1.5 us of the
    shipper's ~12 in all (bench/shipper.py). The records hold no reference cycles, so a pass every 50,000
    allocations loses nothing; what startup built is frozen out of every pass, as the gateway does
    (server.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(BATCH_GC_THRESHOLD, 20, 20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="wardgate-audit-shipper")
    ap.add_argument("--journal", type=Path, required=True)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between looks when idle")
    ap.add_argument("--audit-key", type=Path, default=None, help="the checkpoint signing key file")
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument("--checkpoint-interval", type=float, default=10.0)
    ap.add_argument("--parent", type=int, default=None,
                    help="the gateway's pid: the shipper stops when it is no longer its parent")
    ap.add_argument("--sinks", default=None, help="the live audit sinks' settings (JSON, secrets as references)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = os.environ.get(STORE_ENV)
    if not url:
        log.error("%s is not set", STORE_ENV)
        return 2
    # Given by the gateway, not read here: a gateway that dies while this process starts would leave it an
    # orphan whose parent (init) it would take for the gateway, and it would never stop.
    parent = args.parent if args.parent is not None else os.getppid()
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when we stop
    store = Store(url)
    hub = None if args.sinks is None else _open_sinks(args.sinks, store, args.journal.name, str(parent))
    quiet_collector()
    shipper: Shipper | None = None
    backoff = 0.2
    failing = False
    while True:
        try:
            if shipper is None:
                checkpointer = None
                if args.audit_key is not None:
                    checkpointer = Checkpointer(store, audit_key(args.audit_key), args.checkpoint_every,
                                                args.checkpoint_interval)
                shipper = Shipper(store, args.journal, checkpointer=checkpointer, sinks=hub)
            shipped = shipper.ship_available()
            shipper.report_losses()
            if failing:
                log.warning("audit store writable again")
            failing, backoff = False, 0.2
        except JournalCorrupt as exc:
            log.error("the audit journal %s is damaged (%s); it is kept for inspection", args.journal, exc)
            if hub is not None:
                hub.close()  # what the sinks still hold is counted in the log; the store cannot take more
            return 3
        except StoreError as exc:
            if not failing:
                log.error("audit store write failed, retrying: %s", exc)
            failing = True
            if stopping or os.getppid() != parent:
                if hub is not None:
                    hub.close()
                return 1  # the journal keeps the rest; the next gateway start ships it
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        if stopping or os.getppid() != parent:
            shipper.stop_sinks()  # before signing: the final loss events are then attested too
            if shipper.checkpointer is not None:
                shipper.checkpointer.sign()  # the chain's last entries are attested before the process ends
            return 0
        if shipped < shipper.batch_size:
            # Caught up: wait for more. Under load this makes each store transaction carry an interval's worth
            # of records instead of the few that arrived while the last one committed.
            time.sleep(args.interval)


def _open_sinks(text: str, store: Store, chain: str, procid: str) -> SinkHub | None:
    """The live sinks, or None when their settings no longer load (a secret file gone, a CA file unreadable):
    the store's shipping must go on regardless; the failure is logged and recorded as an event."""
    from .sinks import LOSS_EVENT, SinkHub, parse_sinks

    try:
        return SinkHub.open(parse_sinks(text), store, procid)
    except (ValueError, OSError) as exc:  # ssl.SSLError is an OSError
        problem = str(exc)
    log.error("the audit sinks could not be started, records go to the store only: %s", problem)
    try:
        names = [s.get("name") for s in json.loads(text) if isinstance(s, dict)]
    except (ValueError, TypeError):
        names = []
    detail = {"sinks": names, "error": f"not started: {problem}", "final": False}
    try:
        store.write([Write("events", {"at": time.time(), "kind": LOSS_EVENT, "subject": None, "connection": None,
                                      "client_addr": None, "session_id": None,
                                      "detail": json.dumps(detail, sort_keys=True)})], chain=chain)
    except StoreError as exc:
        log.error("cannot record that the audit sinks did not start: %s", exc)
    return None


if __name__ == "__main__":
    sys.exit(main())
