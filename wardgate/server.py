"""`wardgate serve`: prepare the store, keys and TLS, then run the listeners until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

from .api.serve import api_server
from .audit.chain import CLI_CHAIN
from .audit.journal import Journal, leftovers
from .audit.recorder import Recorder
from .audit.retention import prune, retention_cutoff
from .audit.shipper import drain
from .audit.signing import Checkpointer, audit_key, sign_head
from .config import Config, parse_host_port
from .frontends.postgres import PostgresFrontend
from .identity.keys import load_or_create
from .identity.tokens import TokenService
from .identity.verify import authenticators
from .pipeline import Pipeline
from .reviews.deliver import Deliverer
from .store import Store, StoreError
from .store.auditlog import AuditLog
from .tls import ensure_self_signed, server_context

log = logging.getLogger("wardgate")


def open_store(config: Config) -> Store:
    """The store with every migration applied; used by `serve` and by every CLI command that reads it."""
    store = Store(config.store)
    store.migrate()
    return store


def token_service(config: Config, store: Store) -> TokenService:
    return TokenService(store, load_or_create(store, config.identity.tokens.key_file))


async def serve(config: Config, store: Store) -> None:
    # Signals first: a stop asked for during start-up must still shut down cleanly (journal, shipper).
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    host, port = parse_host_port(config.listen.postgres)
    ssl_ctx = None
    if config.tls_enabled:
        cert, key = config.tls_files()
        if config.tls.self_signed:
            ensure_self_signed(cert, key, [host])
        ssl_ctx = server_context(cert, key)
    auths = authenticators(config, store)
    pipeline_id = gateway_id()
    journal_dir = config.data_dir / "journal"
    signer = audit_key(config.audit_key_file(), store)
    sign_head(store, signer, CLI_CHAIN)
    replay_journals(store, journal_dir, lambda: Checkpointer(store, signer, config.audit.checkpoint_every,
                                                               config.audit.checkpoint_interval))
    journal = Journal(journal_dir, journal_name(pipeline_id), fsync=config.audit.fsync)
    shipper_args = [
        "--audit-key", str(config.audit_key_file()), "--checkpoint-every", str(config.audit.checkpoint_every),
        "--checkpoint-interval", str(config.audit.checkpoint_interval)]
    if config.audit.sinks:  # the shipper feeds them; secrets go as references, read again over there
        from .audit.sinks import sinks_argument

        shipper_args += ["--sinks", sinks_argument(config.audit.sinks)]
    recorder = Recorder(store, journal, shipper_args=shipper_args)
    pipeline = Pipeline(config, recorder, auths, pipeline_id)
    record_config(store, pipeline, config)
    frontend = PostgresFrontend(config, pipeline, ssl_ctx)
    # Everything built so far (config, parser tables, SQLAlchemy metadata) lives as long as the process: move it
    # out of the collector's sight so that collections on the hot path only scan what the relay allocates.
    gc.collect()
    gc.freeze()
    recorder.start()
    try:
        server = await loop.create_server(frontend.protocol, host, port, reuse_address=True, backlog=1024)
    except BaseException:
        recorder.stop(timeout=5)
        raise
    background_stop = asyncio.Event()
    grants_task = None
    if any(c.access is not None for c in config.connections.values()):
        grants_task = loop.create_task(frontend.watch_grants(background_stop))
    api = api_server(config, pipeline)
    api_task = None if api is None else loop.create_task(api.serve())
    retention_task = None
    if config.audit.retention is not None:
        retention_task = loop.create_task(keep_retention(store, config.audit.retention, background_stop))
    notify_stop = asyncio.Event()
    notify_task = None
    if config.notifications.webhooks or config.notifications.email:  # nothing is queued otherwise
        deliverer = Deliverer(config.notifications, pipeline.outbox, pipeline.notification_gave_up)
        notify_task = loop.create_task(deliverer.run(notify_stop))
    bound = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets)
    log.info(
        "wardgate %s listening for PostgreSQL clients on %s (%s); HTTP API %s; store %s; connections: %s",
        pipeline.gateway_id,
        bound,
        "TLS" if ssl_ctx else "plaintext only",
        config.listen.api or "off",
        store.describe(),
        ", ".join(config.connections) or "none",
    )
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        server.close()
        frontend.shutdown()
        if api is not None and api_task is not None:
            api.should_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(api_task, 5)
        background_stop.set()
        if retention_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(retention_task, 5)
        if grants_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(grants_task, 5)
        notify_stop.set()
        if notify_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(notify_task, 5)
        await asyncio.sleep(0.05)
        if not recorder.stop(timeout=10):
            log.error("some audit records could not be written before shutdown")
        store.close()


async def keep_retention(store: Store, seconds: float, stop: asyncio.Event, every: float = 3600.0) -> None:
    """Prune audit older than ``seconds`` now and every ``every`` seconds, in a thread (it is store work)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            done = await loop.run_in_executor(None, prune, store, retention_cutoff(seconds), "retention")
            if done.entries or any(done.rows.values()):
                log.info("retention: pruned %d chain entries and rows %s older than %s", done.entries, done.rows,
                         done.before)
        except StoreError as exc:
            log.warning("retention: cannot prune the audit now: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def record_config(store: Store, pipeline: Pipeline, config: Config) -> None:
    """A ``config_loaded`` event for every gateway start: the configuration's digest and content (secrets as their
    references), and, when it differs from the one the last gateway start recorded, which sections changed."""
    digest, body = config.fingerprint()
    try:
        last = store.events(kind="config_loaded", limit=1)
    except StoreError:
        last = []
    before = last[0]["detail"] if last else None
    changed = None
    if before is not None and before.get("sha256") != digest:
        old = before.get("config") or {}
        changed = sorted(k for k in set(old) | set(body) if old.get(k) != body.get(k))
    try:  # every chain this start finds, so that `audit verify` notices one deleted whole (verify.cross_links)
        chains = {c: {"seq": int(h["seq"]), "hash": h["hash"]} for c, h in AuditLog(store).heads().items()
                  if int(h["seq"]) > 0}
    except StoreError:
        chains = {}
    pipeline.record_event("config_loaded", None, {
        "gateway": pipeline.gateway_id, "sha256": digest, "previous_sha256": before.get("sha256") if before else None,
        "changed_sections": changed, "config": body, "chains": chains})


def gateway_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def journal_name(gateway: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{gateway}-{int(time.time())}")


def replay_journals(store: Store, directory: Path,
                    checkpointer: Callable[[], Checkpointer] | None = None) -> None:
    """Records a gateway that is gone journaled but never shipped go to the store now, exactly once, onto that
    gateway's chain (whose head is then signed)."""
    for path in leftovers(directory):
        shipped = drain(store, path, checkpointer() if checkpointer else None)
        if shipped:
            log.warning(
                "shipped %d audit records left in %s by a gateway that did not stop cleanly", shipped, path.name
            )
        path.unlink()
        store.forget_journal(path.name)


def run(config: Config, store: Store) -> None:
    uvloop.run(serve(config, store))
