"""The audit shipper: moves journaled records into the store, in a process of its own.

The gateway's only audit work on the hot path is appending to its journal. This process tails that journal and
writes complete records to the store in large transactions, committing the journal offset in the same
transaction, so every record reaches the store exactly once, whatever crashes and restarts. Keeping it out of
the gateway's process keeps the store's cost off the relay's interpreter lock.

    python -m wardgate.audit.shipper --journal PATH      (store URL in WARDGATE_SHIPPER_STORE)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from ..store import Store, StoreError
from .journal import JournalCorrupt, decode
from .samples import prepare
from .signing import Checkpointer, audit_key

log = logging.getLogger("wardgate.audit.shipper")
STORE_ENV = "WARDGATE_SHIPPER_STORE"


class Shipper:
    """Ships one journal file from the offset the store last committed for it."""

    def __init__(self, store: Store, path: Path, batch_size: int = 5000,
                 checkpointer: Checkpointer | None = None) -> None:
        self.store = store
        self.checkpointer = checkpointer
        self.path = path
        self.name = path.name
        self.batch_size = batch_size
        self.offset = store.journal_offset(self.name)
        self._fh = open(path, "rb")  # noqa: SIM115 - held for the shipper's life
        self._fh.seek(self.offset)
        self._pending = bytearray()

    def ship_available(self) -> int:
        """Write every complete record now in the journal; return how many. Raises StoreError, JournalCorrupt."""
        self._pending += self._fh.read()
        shipped = 0
        while True:
            writes, consumed = decode(self._pending)
            if not writes:
                if self.checkpointer is not None:
                    self.checkpointer.moved(None)  # an idle chain is signed once its interval has passed
                return shipped
            # the journal's name is the chain's: one chain per gateway process, no lock shared with replicas
            prepare(writes)  # result samples: wire values to text, here rather than on the relay
            head = self.store.write(writes, (self.name, self.offset + consumed), chain=self.name)
            if self.checkpointer is not None:
                self.checkpointer.moved(head)
            self.offset += consumed
            del self._pending[:consumed]
            shipped += len(writes)

    def close(self) -> None:
        self._fh.close()


def drain(store: Store, path: Path, checkpointer: Checkpointer | None = None) -> int:
    """Ship a journal to its end (a journal left by a gateway that is gone); returns records shipped. Its chain
    ends there: its head is signed."""
    shipper = Shipper(store, path, checkpointer=checkpointer)
    try:
        return shipper.ship_available()
    finally:
        if checkpointer is not None:
            checkpointer.sign()
        shipper.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="wardgate-audit-shipper")
    ap.add_argument("--journal", type=Path, required=True)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between looks when idle")
    ap.add_argument("--audit-key", type=Path, default=None, help="the checkpoint signing key file")
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument("--checkpoint-interval", type=float, default=10.0)
    ap.add_argument("--parent", type=int, default=None,
                    help="the gateway's pid: the shipper stops when it is no longer its parent")
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
                shipper = Shipper(store, args.journal, checkpointer=checkpointer)
            shipped = shipper.ship_available()
            if failing:
                log.warning("audit store writable again")
            failing, backoff = False, 0.2
        except JournalCorrupt as exc:
            log.error("the audit journal %s is damaged (%s); it is kept for inspection", args.journal, exc)
            return 3
        except StoreError as exc:
            if not failing:
                log.error("audit store write failed, retrying: %s", exc)
            failing = True
            if stopping or os.getppid() != parent:
                return 1  # the journal keeps the rest; the next gateway start ships it
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        if stopping or os.getppid() != parent:
            if shipper.checkpointer is not None:
                shipper.checkpointer.sign()  # the chain's last entries are attested before the process ends
            return 0
        if shipped < shipper.batch_size:
            # Caught up: wait for more. Under load this makes each store transaction carry an interval's worth
            # of records instead of the few that arrived while the last one committed.
            time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
