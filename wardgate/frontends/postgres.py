"""The PostgreSQL front-end: client socket <-> codec <-> pipeline <-> upstream socket.

Each side is an ``asyncio.Protocol``. During startup the bytes are consumed by a coroutine (TLS, token,
upstream login); after that both sides relay in ``data_received`` with no await per message: frames are parsed,
the few that matter are shown to the pipeline, and each batch is written once. Flow control is explicit: when
one side's write buffer fills, the other side stops reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import ssl
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

from ..audit.recorder import AuditUnavailable
from ..audit.samples import Kept
from ..catalog import Catalog, CatalogUnavailable
from ..config import Config, PostgresConnection
from ..pipeline import (
    ClientInfo,
    Pipeline,
    ReviewRequired,
    Session,
    SessionRefused,
    StatementRecord,
    StatementRefused,
)
from ..policy.decide import single_statement
from ..policy.sql import prepared_names
from ..protocols.postgres import decode, encode
from ..protocols.postgres import messages as m
from ..protocols.postgres.auth import UpstreamAuth, UpstreamAuthError
from ..protocols.postgres.framing import (
    MAX_BACKEND_MESSAGE_BYTES,
    NO_RUNS,
    FrameReader,
    ProtocolViolation,
    StartupReader,
)
from ..protocols.postgres.tracker import ExchangeTracker
from ..store import StoreError
from ..tls import upstream_context
from .pg_masking import CleanTest, NeedCatalog, SessionMasker
from .pg_review import HeldMessage, Outcome, wait_for_review

log = logging.getLogger("wardgate.postgres")

# Startup parameters that are the gateway's to set, never the client's.
_NOT_FORWARDED = frozenset({"user", "database", "replication"})
# A statement the server is certain to reject at parse time; sent in place of a refused message so that the
# server's own error handling (rollback, skip to Sync, ReadyForQuery) stays exactly in step with the client's.
_REFUSED_SQL = "-- refused by wardgate\nWARDGATE_REFUSED"
_REFUSED_NAME = "__wardgate_refused__"
_MAX_AUTH_MESSAGE = 65535
# Bytes a client may send before its session relays (they wait for the upstream login); then reading pauses.
_STARTUP_INBOX_LIMIT = 1 << 20


class _Closed(Exception):
    """The peer went away while we were waiting for it."""


# The handles below are made for every message of every statement, so each has an explicit ``__init__``:
# compiled with mypyc, that is a direct C call (~35 ns), where a dataclass's generated ``__init__`` stays
# interpreted Python behind a generic call (~450 ns, frozen).


@dataclass(slots=True, init=False, eq=False)
class Refusal:
    """Stands in the tracker for a refused statement: the error the client gets in place of the server's."""

    frame: bytes

    def __init__(self, frame: bytes) -> None:
        self.frame = frame


@dataclass(slots=True, init=False, eq=False)
class PendingParse:
    """Stands in the tracker for a Parse until ParseComplete; if the server rejects it, that is recorded."""

    text: str
    name: str
    previous: str | None  # the name's text before this Parse (None: there was none), put back if the Parse
    # never takes effect

    def __init__(self, text: str, name: str = "", previous: str | None = None) -> None:
        self.text = text
        self.name = name
        self.previous = previous


@dataclass(slots=True, init=False, eq=False)
class PendingClose:
    """A Close until CloseComplete: if it is skipped, the statement it named lives on."""

    kind: str
    name: str
    previous: str | None

    def __init__(self, kind: str, name: str, previous: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.previous = previous


@dataclass(frozen=True, slots=True)
class PendingBind:
    """A Bind until BindComplete: its error is the error of the Execute that follows."""


@dataclass(slots=True, init=False, eq=False)
class PendingDescribe:
    """A Describe until RowDescription/NoData: its error belongs to no statement."""

    kind: str
    name: str

    def __init__(self, kind: str = "S", name: str = "") -> None:
        self.kind = kind
        self.name = name


@dataclass(slots=True, init=False, eq=False)
class InjectedDescribe:
    """A Describe of a portal the gateway sent before an Execute, to learn the columns it must mask; its
    answer is the gateway's, not the client's. Its error is the error of the Execute that follows."""

    portal: str

    def __init__(self, portal: str) -> None:
        self.portal = portal


_PREPARED_KINDS = frozenset({"prepare", "deallocate", "discard"})
_BIND: Final = PendingBind()
Handle = StatementRecord | Refusal | PendingParse | PendingClose | PendingBind | PendingDescribe | InjectedDescribe
_PENDING = (PendingParse, PendingClose, PendingBind, PendingDescribe, InjectedDescribe)


@dataclass(frozen=True, slots=True)
class CancelTarget:
    secret: int
    host: str
    port: int
    pid: int
    upstream_secret: int
    client: ClientConnection | None = None  # whose key it is: a statement it holds for review is withdrawn


class _Endpoint:
    """Shared plumbing: a transport, a startup-phase inbox read by a coroutine, and flow control to a peer.

    An ``asyncio.Protocol`` by its methods, not by inheritance (the event loop only calls them): a class with a
    Python base is compiled by mypyc as a non-native class, whose every attribute is a dict lookup; this one is
    native, its fields are C struct members and its methods direct calls.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None  # set through set_transport
        # The transport's write and is_closing, bound once (set_transport): compiled, ``transport.write(...)`` is
        # a lookup by name and a call, ~600 instructions, where a bound method in a field is a call.
        self._send: Callable[[bytes], object] | None = None
        self._closing: Callable[[], bool] | None = None
        self.peer: _Endpoint | None = None
        self._rx = bytearray()
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self.relaying = False  # set once startup is over: data goes to ``relay_data``
        self.bytes_in = 0
        self.bytes_out = 0

    # asyncio callbacks ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.set_transport(cast(asyncio.Transport, transport))  # uvloop's transports are not subclasses

    def set_transport(self, transport: asyncio.Transport | None) -> None:
        """The transport from now on (TLS replaces the first one), and its methods the relay calls each time."""
        self.transport = transport
        self._send = None if transport is None else transport.write
        self._closing = None if transport is None else transport.is_closing

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.relaying:
            self.relay_data(data)
            return
        self._rx += data
        if len(self._rx) > _STARTUP_INBOX_LIMIT and not self._paused and self.transport is not None:
            self.transport.pause_reading()  # nothing is relayed yet: do not take more than a login needs
            self._paused = True
        self._wake()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake()

    def pause_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.resume_reading()

    def relay_data(self, data: bytes) -> None:
        """Bytes that arrived once startup was over: each side overrides this."""
        raise NotImplementedError

    def as_protocol(self) -> asyncio.Protocol:
        """This endpoint where the event loop's API asks for a protocol (see the class docstring)."""
        return cast(asyncio.Protocol, self)

    # helpers ------------------------------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _more(self) -> None:
        if self._eof:
            raise _Closed
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._drained():
            raise _Closed

    def _drained(self) -> bool:
        """The peer is gone and nothing it sent is left to read."""
        return self._eof and not self._rx

    def take_rx(self) -> bytes:
        rx, self._rx = bytes(self._rx), bytearray()
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return rx

    def write(self, data: bytes) -> None:
        send, closing = self._send, self._closing
        if send is not None and closing is not None and not closing():
            self.bytes_out += len(data)
            send(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class FrameInbox:
    """Typed frames read one at a time during startup, from an endpoint's inbox."""

    def __init__(self, endpoint: _Endpoint, reader: FrameReader) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.frames: deque[tuple[int, bytes]] = deque()

    async def next(self) -> tuple[int, bytes]:
        while not self.frames:
            rx = self.endpoint.take_rx()
            if rx:
                self.frames.extend(self.reader.feed(rx))
                continue
            await self.endpoint._more()
        return self.frames.popleft()

    async def byte(self) -> int:
        while True:
            rx = self.endpoint.take_rx()
            if rx:
                self.endpoint._rx = bytearray(rx[1:])
                return rx[0]
            await self.endpoint._more()


class UpstreamConnection(_Endpoint):
    """The gateway's connection to the real server, logged in with the stored credential."""

    def __init__(self, client: ClientConnection) -> None:
        super().__init__()
        self.client = client
        self.reader = FrameReader(MAX_BACKEND_MESSAGE_BYTES)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.relaying:
            self.client.upstream_lost()

    def relay_data(self, data: bytes) -> None:
        self.client.from_upstream(data)


class UpstreamError(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


class ClientConnection(_Endpoint):
    """One client session, from the first byte to the last."""

    def __init__(self, frontend: PostgresFrontend) -> None:
        super().__init__()
        self.frontend = frontend
        self.pipeline = frontend.pipeline
        self.reader = FrameReader(frontend.config.limits.max_message_bytes)
        self.upstream: UpstreamConnection | None = None
        self.session: Session | None = None
        self.tracker: ExchangeTracker[Handle] = ExchangeTracker()
        self.rows = 0
        self.tls = False
        self.terminated = False
        self.upstream_fatal = False
        self.closing_reason: str | None = None
        self.backend_pid = 0
        self.client_addr = ""
        self.task: asyncio.Task[None] | None = None
        self.cancel_secret = 0
        # extended-protocol COPY FROM STDIN: Syncs sent after the last Execute, and whether copy-in is on
        self.copy_syncs = 0
        self.copy_closed = True
        self.copy_in = False
        # A refusal is in the batch not yet closed by Sync: the server will skip everything up to that Sync, so
        # what follows is neither decided nor recorded (it never runs).
        self.doomed = False
        # Masking (None when the session's results are relayed as they are).
        self.masker: SessionMasker | None = None
        self.described: set[str] = set()  # portals the client described since their Bind (client side)
        self.portal_rows: dict[str, bytes | None] = {}  # a portal's RowDescription (answer side)
        self.row_description: bytes | None = None  # the current simple-protocol result's
        self.plan_for: object = None  # the record the plan below was chosen for
        self.plan: object = None
        self.clean_test: CleanTest | None = None  # the plan's (SessionMasker.clean_test)
        replay = frontend.config.audit.replay
        self.keep_rows, self.keep_bytes = replay.rows, replay.value_bytes  # result samples for session replay
        self.copy_out = -1  # format of the COPY TO STDOUT in progress (0 text, 1 binary), -1: none
        self.held: list[tuple[int, bytes, int]] | None = None  # answers waiting for a catalog lookup
        self.answers_same = False  # did the last _answers pass every frame on as it came?
        # The last CommandComplete and what it says: a statement run again brings the very same bytes back
        # (FrameReader), and its tag is not decoded again.
        self.last_complete = b""
        self.last_tag = ""
        self.last_rows = -1
        # A message held for review, and what the client sent after it (not read while it waits).
        self.waiting: HeldMessage | None = None
        self.stashed = bytearray()
        self.review_task: asyncio.Task[Outcome] | None = None
        self.grant_timer: asyncio.TimerHandle | None = None  # ends the session when its access grant expires
        self.deferred = False  # answers of this session wait in PostgresFrontend.defer for the journal write

    # --- lifecycle --------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.client_addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "local")
        self.frontend.clients.add(self)
        self.task = asyncio.get_running_loop().create_task(self._startup())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.frontend.clients.discard(self)
        reason = self.closing_reason or ("client terminated" if self.terminated else "client disconnected")
        self._end(reason)

    def _end(self, reason: str) -> None:
        """Close the upstream, settle every statement still in flight, record the session end. Idempotent."""
        if self.closing_reason is None:
            self.closing_reason = reason
        up = self.upstream
        if up is not None:
            up.relaying = False
            if up.transport is not None and not up.transport.is_closing():
                if not self.terminated:
                    up.write(encode.terminate())
                up.close()
        self.frontend.unregister_cancel(self.backend_pid, self.cancel_secret)
        self.frontend.granted.discard(self)
        if self.grant_timer is not None:
            self.grant_timer.cancel()
        if self.review_task is not None:
            self.review_task.cancel()
        if self.session is not None and not self.session.ended:
            w = self.waiting
            if w is not None:
                # The request stays as it is (pending): an approval later finds no session to run in.
                for r in w.held.records:
                    self.pipeline.finish(r, "lost", message=f"{self.closing_reason} while waiting for review "
                                                            f"{w.review_id or '(not created)'}")
            for h in self.tracker.pending():
                if isinstance(h, StatementRecord):
                    self.pipeline.finish(h, "lost", message=self.closing_reason)
            self.pipeline.end_session(self.session, self.closing_reason, self.bytes_in, self.bytes_out)

    def _fatal(self, sqlstate: str, message: str, reason: str | None = None) -> None:
        self.write(encode.error_response(sqlstate, message, severity="FATAL"))
        self._end(reason or message)
        self.close()

    def journal_failed(self, exc: AuditUnavailable) -> None:
        self._fatal("58030", f"wardgate cannot record this session's statements, so it ends it: {exc}",
                    "audit journal unavailable")

    def write(self, data: bytes) -> None:
        if self.deferred:  # answers of this session wait for the journal: they go first
            self.frontend.flush_deferred()
        super().write(data)

    # --- startup ----------------------------------------------------------------------------------------------

    async def _startup(self) -> None:
        try:
            async with asyncio.timeout(self.frontend.config.limits.auth_timeout):
                result = await self._client_login()
            if result is None:
                return
            session, params = result
            await self._connect_upstream(session, params)
        except _Closed:
            self._end("client disconnected during startup")
            self.close()
        except TimeoutError:
            self._fatal("08P01", "wardgate: authentication timed out")
        # One name per exception type: compiled (mypyc), a coroutine keeps each local as one typed slot.
        except ProtocolViolation as violation:
            self._fatal("08P01", f"wardgate: protocol violation: {violation}")
        except SessionRefused as refused:
            self._fatal(refused.sqlstate, refused.message, f"refused: {refused.message}")
        except UpstreamError as failed:
            self._fatal(failed.sqlstate, failed.message, f"upstream failed: {failed.message}")
        except Exception:
            log.exception("unexpected error during startup from %s", self.client_addr)
            self._fatal("XX000", "wardgate: internal error during startup (see the gateway log)")

    async def _client_login(self) -> tuple[Session, dict[str, str]] | None:
        startup = StartupReader()
        while True:
            packet = None
            while packet is None:
                rx = self.take_rx()
                if rx:
                    packet = startup.feed(rx)
                    continue
                await self._more()
            msg = decode.startup_packet(packet)
            if isinstance(msg, m.SSLRequest):
                if startup.take_rest() or self._rx:
                    raise ProtocolViolation("data was sent after SSLRequest before the TLS handshake")
                if self.tls or self.frontend.ssl_context is None:
                    self.write(b"N")
                    continue
                self.write(b"S")
                await self._start_tls()
                continue
            if isinstance(msg, m.GSSENCRequest):
                self.write(b"N")
                continue
            if isinstance(msg, m.CancelRequest):
                await self.frontend.cancel(msg.pid, msg.secret)
                self.close()
                return None
            break
        assert isinstance(msg, m.StartupMessage)
        self._rx = bytearray(startup.take_rest()) + self._rx
        if not self.tls and not self.frontend.config.listen.allow_plaintext:
            raise SessionRefused("28000", "wardgate requires TLS: connect with sslmode=require (or verify-full)")
        params = msg.params
        if "replication" in params and params["replication"].lower() not in ("false", "off", "no", "0"):
            raise SessionRefused("0A000", "wardgate does not relay replication connections")
        unsupported = [k for k in params if k.startswith("_pq_.")]
        if msg.minor > 0 or unsupported:
            self.write(encode.negotiate_protocol_version(0, unsupported))
        user = params.get("user", "")
        if not user:
            raise SessionRefused("28000", "no user name given: use your wardgate identity as the user")
        database = params.get("database") or user
        self.write(encode.auth_cleartext())
        # PostgreSQL caps authentication messages at 64 KiB; an anonymous client gets no more here.
        inbox = FrameInbox(self, FrameReader(_MAX_AUTH_MESSAGE))
        kind, frame = await inbox.next()
        if kind != m.PASSWORD:
            raise ProtocolViolation(f"expected a password message, got {chr(kind)!r}")
        if inbox.frames:
            raise ProtocolViolation("messages were sent before authentication completed")
        self._rx = bytearray(inbox.reader.take_rest()) + self._rx
        try:
            credential = decode.password(frame).decode("utf-8")
        except UnicodeDecodeError:
            credential = ""
        info = ClientInfo(self.client_addr, params.get("application_name", ""), "postgres")
        session = await self.pipeline.open_session(
            user=user, credential=credential, connection_name=database, client=info
        )
        self.session = session
        forwarded = {k: v for k, v in params.items() if k not in _NOT_FORWARDED and not k.startswith("_pq_.")}
        self.pipeline.check_startup(session, forwarded)
        return session, forwarded

    async def _start_tls(self) -> None:
        assert self.transport is not None and self.frontend.ssl_context is not None
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(
                self.transport,
                self.as_protocol(),
                self.frontend.ssl_context,
                server_side=True,
                ssl_handshake_timeout=self.frontend.config.limits.auth_timeout,
            )
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            raise _Closed from exc
        if new is None:
            raise _Closed
        self.set_transport(new)
        self.tls = True

    async def _connect_upstream(self, session: Session, params: dict[str, str]) -> None:
        conn = session.connection
        loop = asyncio.get_running_loop()
        up = UpstreamConnection(self)
        self.upstream = up
        try:
            async with asyncio.timeout(conn.connect_timeout):
                await loop.create_connection(up.as_protocol, conn.host, conn.port)
                key, frames = await self._upstream_login(up, conn, params)
        except TimeoutError:
            raise UpstreamError(
                "08006",
                f"wardgate could not reach the upstream of connection "
                f'"{session.connection_name}" within {conn.connect_timeout:g}s',
            ) from None
        except OSError as unreachable:  # a name of its own: see _startup
            raise UpstreamError(
                "08006",
                f"wardgate could not reach the upstream of connection "
                f'"{session.connection_name}": {unreachable.strerror or unreachable}',
            ) from None
        except _Closed:
            raise UpstreamError(
                "08006",
                f'the upstream of connection "{session.connection_name}" closed the connection during login',
            ) from None
        except UpstreamAuthError as refused:
            raise UpstreamError(
                "08006",
                f'wardgate could not log in to the upstream of connection "{session.connection_name}": {refused}',
            ) from None
        if self.transport is None or self.transport.is_closing():
            up.close()  # the client left while we were logging in upstream
            return
        pid, secret = self.frontend.register_cancel(conn, key, self)
        self.backend_pid = pid
        self.cancel_secret = secret
        up.peer = self
        self.peer = up
        # From here on both sides relay; anything already buffered is relayed first.
        if session.masking is not None:
            self.masker = SessionMasker(session.masking, self.frontend.catalog(session))
        self.write(encode.auth_ok() + b"".join(frames[:-1]) + encode.backend_key_data(pid, secret) + frames[-1])
        if session.grant is not None:
            self._watch_grant(session)
        self.relaying = True
        up.relaying = True
        rest = self.take_rx()
        if rest:
            self.relay(rest)
        up_rest = up.take_rx()
        if up_rest:
            self.from_upstream(up_rest)
        if up._eof:
            self.upstream_lost()

    async def _upstream_login(
        self,
        up: UpstreamConnection,
        conn: PostgresConnection,
        params: dict[str, str],
    ) -> tuple[tuple[int, int], list[bytes]]:
        """Log in upstream; returns its BackendKeyData and the frames to replay (ParameterStatus..., Z)."""
        inbox = FrameInbox(up, up.reader)
        ctx = upstream_context(conn.sslmode, conn.sslrootcert)
        if ctx is not None:
            up.write(encode.ssl_request())
            answer = await inbox.byte()
            if answer != ord("S"):
                raise UpstreamError(
                    "08006",
                    f'the upstream of connection "{self._conn_name}" does not accept TLS (sslmode={conn.sslmode})',
                )
            assert up.transport is not None
            loop = asyncio.get_running_loop()
            try:
                up.set_transport(await loop.start_tls(up.transport, up.as_protocol(), ctx, server_hostname=conn.host))
            except ssl.SSLError as exc:
                raise UpstreamError(
                    "08006",
                    f'TLS to the upstream of connection "{self._conn_name}" failed: {exc.reason or exc}',
                ) from None
        startup = {"user": conn.user, "database": conn.database, **params}
        if self.session is not None and self.session.read_only:
            startup["default_transaction_read_only"] = "on"  # the server refuses what the gateway cannot see
        up.write(encode.startup_message(startup))
        auth = UpstreamAuth(conn.user, conn.password.value if conn.password else None)
        replay: list[bytes] = []
        key = (0, 0)
        while True:
            kind, frame = await inbox.next()
            if kind == m.AUTHENTICATION:
                reply = auth.on_request(decode.auth_request(frame))
                if reply:
                    up.write(reply)
            elif kind in (m.PARAMETER_STATUS, m.NOTICE_RESPONSE):
                replay.append(frame)
                if kind == m.PARAMETER_STATUS and self.session is not None:
                    self.pipeline.parameter_changed(self.session, *decode.parameter_status(frame))
            elif kind == m.BACKEND_KEY_DATA:
                key = decode.backend_key(frame)
            elif kind == m.ERROR_RESPONSE:
                err = decode.error_fields(frame)
                code = err.code if err.code and not err.code.startswith("28") else "08006"
                raise UpstreamError(
                    code, f'the upstream of connection "{self._conn_name}" refused the login: {err.message}'
                )
            elif kind == m.READY_FOR_QUERY:
                replay.append(frame)
                if inbox.frames:
                    raise ProtocolViolation("upstream sent data after ReadyForQuery during login")
                return key, replay
            elif kind == m.NEGOTIATE_PROTOCOL_VERSION:
                continue
            else:
                raise UpstreamError("08006", f"unexpected message {chr(kind)!r} from upstream during login")

    @property
    def _conn_name(self) -> str:
        return self.session.connection_name if self.session else "?"

    # --- relay: client -> upstream ---------------------------------------------------------------------------

    def relay_data(self, data: bytes) -> None:
        self.relay(data)

    def relay(self, data: bytes) -> None:
        if self.upstream is None or self.session is None:
            return
        if self.waiting is not None:  # a statement waits for review: what follows it waits too
            self.stashed += data
            if self.transport is not None:
                self.transport.pause_reading()  # flow control may have resumed it: nothing more until then
            return
        reader = self.reader
        whole = not reader.buffered
        try:
            frames = reader.feed_runs(data, NO_RUNS)
        except ProtocolViolation as exc:
            self._fatal("08P01", f"wardgate: protocol violation: {exc}", f"protocol violation: {exc}")
            return
        self._relay_frames(frames, [], data if whole and not reader.buffered else None)

    def _relay_frames(self, frames: list[tuple[int, bytes, int]], out: list[bytes], whole: bytes | None = None) -> None:
        """Decide and forward client frames; a statement held for review stops the loop (the rest waits).

        ``whole``: the bytes read, when ``frames`` are exactly them. If every message goes on as it came, those
        bytes are written as they are, not joined again from their pieces (and ``out`` is not built: it is
        filled from the frames before the first message that changes)."""
        up = self.upstream
        if up is None:
            return
        same = whole is not None
        try:
            for i, (kind, frame, _) in enumerate(frames):
                try:
                    sent = self._client_message(kind, frame)
                except ReviewRequired as held:
                    self._hold(held, kind, frame, frames[i + 1 :])
                    if same:
                        out.extend([f for _, f, _ in frames[:i]])
                        same = False
                    break
                if same:
                    if sent is frame:
                        continue
                    out.extend([f for _, f, _ in frames[:i]])
                    same = False
                out.append(sent)
        except ProtocolViolation as exc:
            self._fatal("08P01", f"wardgate: protocol violation: {exc}", f"protocol violation: {exc}")
            return
        except Exception:
            log.exception("unexpected error relaying from client %s", self.client_addr)
            self._fatal("XX000", "wardgate: internal error (see the gateway log)", "internal error")
            return
        if same and whole is not None:
            up.write(whole)
        elif out:
            up.write(out[0] if len(out) == 1 else b"".join(out))

    def _client_message(self, kind: int, frame: bytes) -> bytes:
        """What goes upstream for one client message: the message itself, or what stands in for it. An if-chain
        on the type byte, commonest first: compiled, a few integer compares (a table of bound methods would be
        a Python-level call each)."""
        if kind == m.BIND:
            return self._on_bind(frame)
        if kind == m.EXECUTE:
            return self._on_execute(frame)
        if kind == m.SYNC:
            return self._on_sync(frame)
        if kind == m.PARSE:
            return self._on_parse(frame)
        if kind == m.DESCRIBE:
            return self._on_describe(frame)
        if kind == m.QUERY:
            return self._on_query(frame)
        if kind == m.CLOSE:
            return self._on_close(frame)
        if kind in (m.COPY_DONE, m.COPY_FAIL):
            return self._on_copy_end(frame)
        if kind == m.FUNCTION_CALL:
            return self._on_function_call(frame)
        if kind == m.TERMINATE:
            return self._on_terminate(frame)
        return frame  # relayed as it is: CopyData, Flush, ...

    # --- just-in-time access: the session lasts as long as its grant --------------------------------------------

    def _watch_grant(self, session: Session) -> None:
        assert session.grant is not None
        left = (session.grant.expires_at - datetime.now(UTC)).total_seconds()
        self.grant_timer = asyncio.get_running_loop().call_later(max(0.0, left), self.grant_over, "expired")
        self.frontend.granted.add(self)

    def grant_over(self, why: str) -> None:
        """The grant expired or was revoked: the session ends (its statements in flight are settled as lost)."""
        session = self.session
        if session is None or session.grant is None or self.closing_reason is not None:
            return
        self.pipeline.grant_ended(session, why)
        self._fatal("57P01", f'wardgate: your access grant {session.grant.id} for connection '
                    f'"{session.connection_name}" {why}; the session ends', f"access grant {why}")

    # --- review: a statement waits for approval -------------------------------------------------------------

    def _hold(self, held: ReviewRequired, kind: int, frame: bytes, rest: list[tuple[int, bytes, int]]) -> None:
        assert self.session is not None and self.transport is not None
        self.waiting = w = HeldMessage(held, kind, frame, rest)
        self.transport.pause_reading()
        self.review_task = task = asyncio.get_running_loop().create_task(
            wait_for_review(self.pipeline, self.session, w, self.write))
        task.add_done_callback(self._reviewed)

    def _reviewed(self, task: asyncio.Task[Outcome]) -> None:
        """The review is over: the held message runs or fails, then what the client sent after it is relayed."""
        w, self.waiting, self.review_task = self.waiting, None, None
        if task.cancelled() or w is None or self.closing_reason is not None:
            return
        exc = task.exception()
        if exc is not None:
            log.error("waiting for a review failed", exc_info=exc)
            self._fatal("XX000", "wardgate: internal error (see the gateway log)", "internal error")
            return
        records, refusal = task.result()
        if w.kind == m.QUERY:
            if records is not None:
                first = self._query_runs(w.frame, w.held.text, records)
            else:
                assert refusal is not None
                self.tracker.query([self._refuse(refusal)])
                first = encode.query(_REFUSED_SQL)
        elif records is not None:
            first = self._execute_runs(w.frame, decode.execute_portal(w.frame), records[0])
        else:
            assert refusal is not None
            first = self._execute_refused(refusal)
        self.pipeline.commit_or_log(f"the outcome of review {w.review_id}")
        self._relay_frames(w.rest, [first])
        if self.waiting is None and self.transport is not None and not self.transport.is_closing():
            stashed, self.stashed = bytes(self.stashed), bytearray()
            self.transport.resume_reading()
            if stashed:
                self.relay(stashed)

    def _refuse(self, exc: StatementRefused) -> Refusal:
        return Refusal(encode.error_response(exc.sqlstate, exc.message, detail=exc.detail, hint=exc.hint))

    def _on_query(self, frame: bytes) -> bytes:
        assert self.session is not None
        text = decode.query(frame)
        try:
            records = self.pipeline.on_query(self.session, text, self.tracker.statements)
        except StatementRefused as exc:
            self.tracker.query([self._refuse(exc)])
            return encode.query(_REFUSED_SQL)
        return self._query_runs(frame, text, records)

    def _query_runs(self, frame: bytes, text: str, accepted: list[StatementRecord]) -> bytes:
        records: list[Handle] = list(accepted)
        self.tracker.query(records)
        self.described.discard("")
        if any(r.info.kind in _PREPARED_KINDS for r in records if isinstance(r, StatementRecord)):
            for op, name, inner in prepared_names(text):
                if op == "prepare" and name is not None and inner is not None:
                    self.tracker.statements[name] = inner
                elif name is None:  # DEALLOCATE ALL, DISCARD ALL: every named statement goes
                    self.tracker.statements = {"": self.tracker.statements[""]} if "" in self.tracker.statements else {}
                else:
                    self.tracker.statements.pop(name, None)
        return frame

    def _on_parse(self, frame: bytes) -> bytes:
        assert self.session is not None
        name, query = decode.parse_target(frame)
        if not self.doomed:
            try:
                self.pipeline.on_parse(self.session, query, self.tracker.statements)
            except StatementRefused as exc:
                # Refused before it exists: a Parse of the same name that fails, so the server's state (no such
                # statement, skip to Sync) is what the client would see had the server itself rejected it.
                # (A failing Parse of the unnamed statement has already dropped the previous one.)
                self.tracker.add(self._refuse(exc))
                self.doomed = True
                if not name:
                    self.tracker.statements.pop("", None)
                return encode.parse(name, _REFUSED_SQL)
        previous = self.tracker.statements.get(name)
        self.tracker.parse(name, query)
        self.tracker.add(PendingParse(query, name, previous))
        return frame

    def _on_bind(self, frame: bytes) -> bytes:
        portal, statement, n = decode.bind_target(frame)
        self.tracker.bind(portal, statement, n)
        self.tracker.add(_BIND)
        self.described.discard(portal)
        return frame

    def _on_describe(self, frame: bytes) -> bytes:
        kind, name = decode.describe(frame)
        self.tracker.add(PendingDescribe(kind, name))
        if kind == "P":
            self.described.add(name)
        return frame

    def _undo(self, handles: list[Handle]) -> None:
        """Parses and Closes the server never carried out: the statement names are put back, newest first."""
        for h in reversed(handles):
            if isinstance(h, PendingParse) or (isinstance(h, PendingClose) and h.kind == "S"):
                if h.previous is None:
                    self.tracker.statements.pop(h.name, None)
                else:
                    self.tracker.statements[h.name] = h.previous

    def _on_execute(self, frame: bytes) -> bytes:
        assert self.session is not None
        portal = decode.execute_portal(frame)
        text, param_count = self.tracker.portal(portal)
        if self.doomed:
            # An earlier message of this batch was refused, so the server skips this one: recorded as skipped,
            # unless it executes the refused statement itself (already recorded as denied).
            if text is not None:
                self.pipeline.record_skipped(self.session, text, param_count, self.tracker.statements)
            return frame
        try:
            rec = self.pipeline.on_execute(self.session, text, param_count, self.tracker.statements)
        except StatementRefused as exc:
            return self._execute_refused(exc)
        return self._execute_runs(frame, portal, rec)

    def _execute_refused(self, exc: StatementRefused) -> bytes:
        self.tracker.add(self._refuse(exc))
        self.doomed = True
        return encode.parse(_REFUSED_NAME, _REFUSED_SQL)

    def _execute_runs(self, frame: bytes, portal: str, rec: StatementRecord) -> bytes:
        rec.portal = portal
        self.copy_syncs = 0
        self.copy_closed = False
        if self.masker is not None and portal not in self.described:
            # The columns of what this Execute returns, which the client may never have asked for.
            self.described.add(portal)
            self.tracker.add(InjectedDescribe(portal))
            self.tracker.add(rec)
            return encode.describe("P", portal) + frame
        self.tracker.add(rec)
        return frame

    def _on_close(self, frame: bytes) -> bytes:
        c = decode.close(frame)
        if c.kind == "P":
            self.described.discard(c.name)
        previous = self.tracker.statements.get(c.name) if c.kind == "S" else None
        self.tracker.close(c.kind, c.name)
        self.tracker.add(PendingClose(c.kind, c.name, previous))
        return frame

    def _on_sync(self, frame: bytes) -> bytes:
        if self.copy_in:
            return frame  # "The backend will ignore Flush and Sync messages received during copy-in mode"
        self.tracker.sync()
        self.doomed = False
        if not self.copy_closed:
            self.copy_syncs += 1
        return frame

    def _on_copy_end(self, frame: bytes) -> bytes:
        self.copy_in = False
        self.copy_closed = True
        return frame

    def _on_function_call(self, frame: bytes) -> bytes:
        assert self.session is not None
        oid, nargs = decode.function_call(frame)
        try:
            rec = self.pipeline.on_function_call(self.session, oid, nargs)
        except StatementRefused as exc:
            self.tracker.query([self._refuse(exc)])
            return encode.query(_REFUSED_SQL)
        self.tracker.add(rec)
        self.tracker.sync()  # unlike a Query, a FunctionCall leaves the unnamed statement and portal alone
        return frame

    def _on_terminate(self, frame: bytes) -> bytes:
        self.terminated = True
        return frame

    # --- relay: upstream -> client ---------------------------------------------------------------------------

    def from_upstream(self, data: bytes) -> None:
        assert self.upstream is not None
        reader = self.upstream.reader
        whole = not reader.buffered
        try:
            frames = reader.feed_runs(data, m.DATA_ROW)
        except ProtocolViolation as exc:
            log.error("upstream of %s sent invalid data: %s", self._conn_name, exc)
            self._fatal("08006", f'wardgate: the upstream of connection "{self._conn_name}" sent invalid data')
            return
        self._relay_answers(frames, data if whole and not reader.buffered else None)

    def _relay_answers(self, frames: list[tuple[int, bytes, int]], whole: bytes | None = None) -> None:
        """``whole``: as in ``_relay_frames``, the bytes read when ``frames`` are exactly them."""
        try:
            out = self._answers(frames)
            if self.answers_same:  # every answer goes on as it came: the bytes read, not joined again
                out = [whole] if whole is not None else [f for _, f, _ in frames]
            if self.pipeline.recorder.staged:
                # The records are durable before the client hears of the statements. With other sessions live,
                # the answers wait for the end of this turn of the event loop, so that one journal write covers
                # every session answered in it (PostgresFrontend.defer).
                if out and len(self.frontend.clients) > 1:
                    self.frontend.defer(self, out[0] if len(out) == 1 else b"".join(out))
                    out = []
                else:
                    self.pipeline.commit()
        except AuditUnavailable as exc:
            self.journal_failed(exc)
            return
        except ProtocolViolation as exc:
            log.error("upstream of %s sent invalid data: %s", self._conn_name, exc)
            self._fatal("08006", f'wardgate: the upstream of connection "{self._conn_name}" sent invalid data')
            return
        except Exception:
            log.exception("unexpected error relaying to client %s", self.client_addr)
            self._fatal("XX000", "wardgate: internal error (see the gateway log)", "internal error")
            return
        if out:
            self.write(out[0] if len(out) == 1 else b"".join(out))
        if self.held is not None and self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()  # resumed when the names are known

    async def _load_names(self, oids: set[int]) -> None:
        """Look up column names, then relay the answers that waited for them. Fails closed: without the names,
        the session ends rather than send values a rule may mark."""
        assert self.masker is not None
        try:
            await self.masker.catalog.load(oids)
        except CatalogUnavailable as exc:
            self._fatal("58030", f"wardgate cannot tell which columns to mask, so it ends the session: {exc}",
                        "catalog unavailable")
            return
        except Exception:
            log.exception("catalog lookup failed for %s", self._conn_name)
            self._fatal("XX000", "wardgate: internal error (see the gateway log)", "internal error")
            return
        held, self.held = self.held, None
        self.masker.forget()
        if held is None or self.transport is None or self.transport.is_closing():
            return
        up = self.upstream
        if up is not None and up.transport is not None and not up.transport.is_closing():
            up.transport.resume_reading()
        self._relay_answers(held)

    def _answers(self, frames: list[tuple[int, bytes, int]]) -> list[bytes]:
        """Pair the server's answers with their statements and settle them; return the frames for the client.

        When masking needs column names that are not known yet, the answers from that one on are held
        (``self.held``) and a lookup starts; they are handled again when it is done. When every frame goes on as
        it came, ``self.answers_same`` is set and the list is left empty (the caller sends the frames, or the
        bytes they were cut from); it is filled from the frames before the first answer that differs."""
        out: list[bytes] = []
        same = True
        for i, (kind, frame, count) in enumerate(frames):
            try:
                answer = self._answer(kind, frame, count)
            except NeedCatalog as need:
                self.held = frames[i:]
                self.frontend.spawn(self._load_names(need.oids))
                if same:
                    out = [f for _, f, _ in frames[:i]]
                    same = False
                break
            if same:
                if answer is frame:
                    continue
                out = [f for _, f, _ in frames[:i]]
                same = False
            if answer is not None:
                out.append(answer)
        self.answers_same = same
        return out

    def _answer(self, kind: int, frame: bytes, count: int) -> bytes | None:
        """One answer (or run of DataRows): settle its statement; return what the client gets, or None."""
        tracker = self.tracker
        pipeline = self.pipeline  # its methods called directly: a bound method in a local is a Python-level call
        masker = self.masker
        if kind == m.DATA_ROW:  # a run of result rows, relayed as one piece
            if masker is not None:
                frame = self._mask_rows(masker, frame)
            if self.keep_rows:
                self._keep(frame, count)
            self.rows += count
        elif kind == m.COMMAND_COMPLETE:
            h = tracker.complete()
            if isinstance(h, StatementRecord):
                if frame is not self.last_complete:  # the reader hands a repeated message back as the same bytes
                    self.last_complete, self.last_tag, self.last_rows = (
                        frame, decode.command_tag(frame), decode.tag_rows(frame))
                rows = self.last_rows
                if h.kept is None and self.keep_rows:
                    self._keep_columns(h)  # a result with no rows: its columns still show in a replay
                pipeline.finish(h, "ok", tag=self.last_tag, rows=self.rows if rows < 0 else rows)
                if masker is not None and "ddl" in h.info.tags:
                    masker.catalog.invalidate()
                    masker.forget()
            self.rows = 0
            self.row_description = None
            self.copy_out = -1
        elif kind in (m.PARSE_COMPLETE, _BIND_COMPLETE, _CLOSE_COMPLETE):  # a Parse, Bind, Close done
            tracker.complete()
        elif kind in (m.ROW_DESCRIPTION, _NO_DATA):  # a Describe's last answer
            head = tracker.head()
            described = frame if kind == m.ROW_DESCRIPTION else None
            if masker is not None and described is not None:
                masker.check_names(described)  # may hold everything from here until the names are known
            if isinstance(head, InjectedDescribe):
                tracker.complete()
                self.portal_rows[head.portal] = described
                return None  # the gateway asked; the client did not
            if isinstance(head, PendingDescribe):
                tracker.complete()
                if head.kind == "P":
                    self.portal_rows[head.name] = described
            elif isinstance(head, StatementRecord):
                self.row_description = described
        elif kind == _COPY_IN_RESPONSE:
            head = tracker.head()
            if isinstance(head, StatementRecord) and head.protocol == "extended":
                tracker.unsync(self.copy_syncs)  # the server ignores the Syncs sent after this Execute
                self.copy_syncs = 0
                self.copy_in = not self.copy_closed
        elif kind == m.ERROR_RESPONSE:
            self.copy_out = -1
            if masker is not None:
                frame = masker.fields(frame, self._counts())
            failed, skipped = tracker.error()
            self._undo([failed, *skipped] if failed is not None else skipped)
            if isinstance(failed, Refusal):
                frame = failed.frame
            else:
                skipped = self._record_error(failed, skipped, frame)
            for h in skipped:
                if isinstance(h, StatementRecord):
                    pipeline.finish(h, "skipped")
            self.rows = 0
        elif masker is not None and kind in (m.COPY_DATA, m.NOTICE_RESPONSE, _NOTIFICATION, _COPY_OUT_RESPONSE,
                                             m.COPY_DONE):
            counts = self._counts()
            if kind == m.COPY_DATA and self.copy_out >= 0:
                frame = masker.copy_data(frame, self.copy_out == 1, counts)
            elif kind == m.NOTICE_RESPONSE:
                frame = masker.fields(frame, counts)
            elif kind == _NOTIFICATION:
                frame = masker.notification(frame, counts)
            elif kind == _COPY_OUT_RESPONSE:
                self.copy_out = frame[5] if len(frame) > 5 else 0
            elif kind == m.COPY_DONE:
                self.copy_out = -1
        elif kind == m.PARAMETER_STATUS:
            if self.session is not None:
                self.pipeline.parameter_changed(self.session, *decode.parameter_status(frame))
        elif kind == m.READY_FOR_QUERY:
            left = tracker.ready()
            self._undo(left)
            for h in left:
                if isinstance(h, StatementRecord):
                    pipeline.finish(h, "skipped")
        elif kind in (m.EMPTY_QUERY_RESPONSE, m.PORTAL_SUSPENDED, _FUNCTION_CALL_RESPONSE):
            h = tracker.complete()
            if isinstance(h, StatementRecord):
                pipeline.finish(
                    h, "suspended" if kind == m.PORTAL_SUSPENDED else "ok", tag=_COMPLETIONS[kind], rows=self.rows
                )
            self.rows = 0
            self.row_description = None
        return frame

    def _counts(self) -> dict[tuple[str, str, str], int]:
        """Where masked values are counted: the statement being answered, or a scratch count when none is."""
        head = self.tracker.head()
        if isinstance(head, StatementRecord):
            if head.masked is None:
                head.masked = {}
            return head.masked
        return {}

    def _mask_rows(self, masker: SessionMasker, run: bytes) -> bytes:
        head = self.tracker.head()
        if head is not self.plan_for:
            if not isinstance(head, StatementRecord):
                raise ProtocolViolation("result rows that answer no statement")
            extended = head.protocol == "extended"
            described = self.portal_rows.get(head.portal or "") if extended else self.row_description
            if described is None:
                # Rows with no description: the gateway cannot tell which column is which, so it sends none.
                raise ProtocolViolation("result rows without a description of their columns")
            self.plan, self.clean_test = masker.plan(described)
            self.plan_for = head
        if self.plan is None:
            return run
        test = self.clean_test
        if test is not None and not decode.rows_may_match(run, test[0], test[1], test[2], test[3]):
            return run
        return masker.rows(self.plan, run, self._counts())  # type: ignore[arg-type]

    def _keep(self, run: bytes, count: int) -> None:
        """Keep the first rows of the statement's result, as sent (after masking), for its audit record."""
        head = self.tracker.head()
        if not isinstance(head, StatementRecord):
            return
        kept = head.kept
        if kept is None:
            extended = head.protocol == "extended"
            described = self.portal_rows.get(head.portal or "") if extended else self.row_description
            kept = head.kept = Kept(described)
        if kept.rows < self.keep_rows:
            kept.take(run, count, self.keep_rows, self.keep_bytes)

    def _keep_columns(self, rec: StatementRecord) -> None:
        described = self.portal_rows.get(rec.portal or "") if rec.protocol == "extended" else self.row_description
        if described is not None:
            rec.kept = Kept(described)

    def _record_error(self, failed: Handle | None, skipped: list[Handle], frame: bytes) -> list[Handle]:
        """Record a server error against its statement, its rejected Parse, or on its own.

        Returns the handles still to be recorded as skipped. A rejected Parse followed by the Execute of that
        same text is one failed statement, recorded once.
        """
        err = decode.error_fields(frame)
        if err.severity in ("FATAL", "PANIC"):
            self.upstream_fatal = True
        assert self.session is not None
        if isinstance(failed, StatementRecord):
            self.pipeline.finish(failed, "error", sqlstate=err.code, message=err.message)
        elif isinstance(failed, PendingParse):
            rest: list[Handle] = [h for h in skipped if not isinstance(h, _PENDING)]
            if rest and isinstance(rest[0], StatementRecord) and rest[0].info == single_statement(failed.text):
                self.pipeline.finish(rest[0], "error", sqlstate=err.code, message=err.message)
                return rest[1:]
            self.pipeline.record_error(self.session, "extended", failed.text, err.code, err.message)
        elif isinstance(failed, PendingBind | InjectedDescribe) and any(
            isinstance(h, StatementRecord) for h in skipped
        ):
            # the Bind (or the gateway's Describe of its portal) failed: a bad parameter, an error planning with
            # it, no such portal. So did its Execute.
            first = next(h for h in skipped if isinstance(h, StatementRecord))
            self.pipeline.finish(first, "error", sqlstate=err.code, message=err.message)
            return [h for h in skipped if h is not first]
        elif not self.upstream_fatal:
            # An error that follows no statement: a commit failing at Sync (deferred constraints), or a Bind,
            # Describe or Close the server rejected.
            self.pipeline.record_error(self.session, "extended", None, err.code, err.message)
        return skipped

    def upstream_lost(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.terminated or self.upstream_fatal:  # the client said goodbye, or already has the server's FATAL
            self._end("client terminated" if self.terminated else "upstream ended the session")
            self.close()
            return
        self._fatal(
            "08006",
            f'wardgate: the upstream of connection "{self._conn_name}" closed the connection',
            "upstream closed",
        )


# Backend message types the answer loop tells apart. Final literals, tested with ``in (...)``: compiled, each
# test is a few integer compares, where a module-level set is a dict lookup and a hash.
_BIND_COMPLETE: Final = 50  # "2"
_CLOSE_COMPLETE: Final = 51  # "3"
_NO_DATA: Final = 110  # "n"
_COPY_IN_RESPONSE: Final = 71  # "G"
_COPY_OUT_RESPONSE: Final = 72  # "H"
_NOTIFICATION: Final = 65  # "A"
_FUNCTION_CALL_RESPONSE: Final = 86  # "V"
_COMPLETIONS = {
    m.EMPTY_QUERY_RESPONSE: "EMPTY",
    m.PORTAL_SUSPENDED: "SUSPENDED",
    _FUNCTION_CALL_RESPONSE: "FUNCTION CALL",
}


class PostgresFrontend:
    """Accepts client connections and keeps what spans them: the cancel-key registry."""

    def __init__(self, config: Config, pipeline: Pipeline, ssl_context: ssl.SSLContext | None) -> None:
        self.config = config
        self.pipeline = pipeline
        self.ssl_context = ssl_context
        self.clients: set[ClientConnection] = set()
        self.cancel_keys: dict[int, list[CancelTarget]] = {}
        self.catalogs: dict[str, Catalog] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.granted: set[ClientConnection] = set()  # sessions that run under an access grant
        self._deferred: list[tuple[ClientConnection, bytes]] = []
        self._flush_scheduled = False

    async def watch_grants(self, stop: asyncio.Event, every: float = 2.0) -> None:
        """End the sessions whose access grant was revoked (from the CLI or another replica): the store is
        asked every ``every`` seconds about the grants in use here, when there are any."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            clients = [c for c in self.granted if c.session is not None and c.session.grant is not None]
            if not clients:
                continue
            ids = [c.session.grant.id for c in clients if c.session and c.session.grant]
            try:
                revoked = await loop.run_in_executor(None, self.pipeline.grants.revoked, ids)
            except StoreError as exc:
                log.warning("cannot check access grants: %s", exc)
                continue
            for c in clients:
                if c.session is not None and c.session.grant is not None and c.session.grant.id in revoked:
                    c.grant_over("revoked")

    def protocol(self) -> asyncio.Protocol:
        return ClientConnection(self).as_protocol()

    # --- answers that wait for the journal ------------------------------------------------------------------

    def defer(self, client: ClientConnection, data: bytes) -> None:
        """Send ``data`` to ``client`` once the records staged so far are journaled, at the end of this turn of
        the event loop: sessions answered in the same turn share one journal write (one system call instead of
        one each). Nothing reaches a client before its records are in the journal."""
        self._deferred.append((client, data))
        client.deferred = True
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_deferred)

    def flush_deferred(self) -> None:
        """Journal what is staged, then send the answers that waited for it, in the order they came; when the
        journal cannot be written, each of their sessions ends instead (fail closed)."""
        self._flush_scheduled = False
        waiting, self._deferred = self._deferred, []
        for client, _ in waiting:
            client.deferred = False
        try:
            self.pipeline.commit()
        except AuditUnavailable as exc:
            for client in dict.fromkeys(c for c, _ in waiting):
                client.journal_failed(exc)
            return
        for client, data in waiting:
            client.write(data)

    def catalog(self, session: Session) -> Catalog:
        """The column names of a connection's tables, shared by its sessions."""
        cat = self.catalogs.get(session.connection_name)
        if cat is None:
            cat = Catalog(session.connection, session.connection_name, self.config.masking.catalog_ttl)
            self.catalogs[session.connection_name] = cat
        return cat

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def register_cancel(self, conn: PostgresConnection, upstream_key: tuple[int, int],
                        client: ClientConnection | None = None) -> tuple[int, int]:
        """The client's BackendKeyData: the upstream's real pid (which pg_backend_pid() and notifications show
        anyway) with a secret of the gateway's own; the upstream's real secret never leaves the gateway."""
        pid = upstream_key[0]
        secret = secrets.randbits(32) - 2**31
        self.cancel_keys.setdefault(pid, []).append(
            CancelTarget(secret, conn.host, conn.port, *upstream_key, client=client))
        return pid, secret

    def unregister_cancel(self, pid: int, secret: int) -> None:
        left = [t for t in self.cancel_keys.get(pid, []) if t.secret != secret]
        if left:
            self.cancel_keys[pid] = left
        else:
            self.cancel_keys.pop(pid, None)

    async def cancel(self, pid: int, secret: int) -> None:
        given = secret.to_bytes(4, "big", signed=True)
        target = None
        for t in self.cancel_keys.get(pid, []):  # two upstreams may have a backend of the same pid
            if hmac.compare_digest(t.secret.to_bytes(4, "big", signed=True), given):
                target = t
        if target is None:
            log.warning("ignored a cancel request with an unknown key")
            return
        if target.client is not None and target.client.waiting is not None:
            target.client.waiting.withdrawn.set()  # the statement waits for review, not for the server
            return
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(5):
                _, writer = await asyncio.open_connection(target.host, target.port)
                writer.write(encode.cancel_request(target.pid, target.upstream_secret))
                await writer.drain()
                writer.close()
                await writer.wait_closed()

    def shutdown(self) -> None:
        for client in list(self.clients):
            client._fatal("57P01", "wardgate is shutting down", "gateway shutdown")
        for cat in self.catalogs.values():
            self.spawn(cat.close())
