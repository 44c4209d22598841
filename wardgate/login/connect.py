"""`wardgate connect`: a local PostgreSQL listener that logs in to the gateway for its user.

Any PostgreSQL client on this machine connects to ``127.0.0.1:PORT`` without a password; for each connection the
listener opens a TLS connection to the gateway's PostgreSQL listener, sends the client's startup parameters with
the user's gateway name and the connection's name, answers the gateway's password request with the user's current
token (refreshed at the identity provider as needed), and then relays both directions byte for byte.

The two legs:

* local client -> listener: plaintext on the loopback interface. SSLRequest and GSSENCRequest are answered 'N':
  the bytes never leave the machine, a certificate for 127.0.0.1 would have to be trusted by every client, and the
  listener refuses other local users itself (below), which is what TLS on a loopback socket would otherwise add.
* listener -> gateway: TLS, the certificate and host name verified against the login's ``ca_file`` (or the system
  store); the listener never sends a token in plaintext.

Local peer check: the listener binds 127.0.0.1 only, but every local user can reach that. On Linux the uid owning
the client's socket is read from ``/proc/net/tcp`` (and ``tcp6``, for dual-stack clients such as Java's) and a
connection of another user is refused with FATAL 28000. Where ``/proc/net`` cannot be read, the check is skipped
with one warning in the log (the listener then protects the token no better than any loopback port would).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import ipaddress
import logging
import os
import pwd
import ssl
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from ..protocols.postgres import decode, encode
from ..protocols.postgres import messages as m
from ..protocols.postgres.framing import FrameReader, ProtocolViolation, StartupReader
from .flows import REFRESH_MARGIN, fresh_token
from .profile import Profile, ProfileError

log = logging.getLogger("wardgate.connect")

LOCAL_HOST = "127.0.0.1"
# The default port: 20000-31999, below Linux's ephemeral range (32768-60999), so that no outgoing connection of
# the machine ever holds it by chance.
PORT_BASE = 20000
PORT_SPAN = 12000
READ_SIZE = 64 * 1024  # one relay read; the streams pause their transport beyond twice this (backpressure)
MAX_AUTH_MESSAGE = 64 * 1024  # what the gateway may send before AuthenticationOk, per message
STARTUP_TIMEOUT = 60.0  # a local client must send its startup packet within this
GATEWAY_TIMEOUT = 20.0  # TCP connect, TLS handshake and login at the gateway
PROC_NET_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
TCP_TIME_WAIT = 0x06
MIN_MARGIN = 1.0
REFRESH_CHECK = 300.0  # the background refresher looks at the token at least this often (seconds)


def default_port(gateway: str, connection: str) -> int:
    """The same port every time for one (gateway, connection): a hash, not a registry, so nothing is stored."""
    digest = hashlib.sha256(f"{gateway.rstrip('/')}\n{connection}".encode()).digest()
    return PORT_BASE + int.from_bytes(digest[:4], "big") % PORT_SPAN


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ProfileError(f"the stored PostgreSQL address {address!r} is not HOST:PORT; run wardgate login again")
    return host.strip("[]"), int(port)


class ConnectError(Exception):
    """Told to the local client as a FATAL ErrorResponse."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


class PortInUse(Exception):
    """The listener's port is taken."""


# --- the local peer check --------------------------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TcpSocket:
    """One line of /proc/net/tcp or tcp6."""

    local: tuple[IPAddress, int]
    remote: tuple[IPAddress, int]
    state: int
    uid: int


def _plain(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``, a dual-stack socket's view) as the IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _proc_address(text: str, byteorder: str) -> tuple[IPAddress, int]:
    """``0100007F:1F90`` -> (127.0.0.1, 8080). The address is printed as 32-bit words in the kernel's byte order,
    the port as a number."""
    addr, _, port = text.partition(":")
    raw = bytes.fromhex(addr)
    if len(raw) not in (4, 16):
        raise ValueError(f"bad address {text!r}")
    if byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip: IPAddress = ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw)
    return _plain(ip), int(port, 16)


def parse_proc_net_tcp(text: str, byteorder: str = sys.byteorder) -> list[TcpSocket]:
    """The sockets of a /proc/net/tcp or tcp6 table; lines that do not parse are skipped."""
    out: list[TcpSocket] = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            out.append(TcpSocket(_proc_address(cols[1], byteorder), _proc_address(cols[2], byteorder),
                                 int(cols[3], 16), int(cols[7])))
        except ValueError:
            continue
    return out


def socket_owner(peer: tuple[str, int], local: tuple[str, int], tables: Sequence[str] = PROC_NET_TCP) -> int | None:
    """The uid owning the client's end of a loopback connection: the socket whose local address is our peer's and
    whose remote address is ours. None when no table lists it; OSError when no table can be read."""
    want_local = (_plain(ipaddress.ip_address(peer[0])), peer[1])
    want_remote = (_plain(ipaddress.ip_address(local[0])), local[1])
    readable = False
    for path in tables:
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        readable = True
        for s in parse_proc_net_tcp(text):
            # a TIME_WAIT entry is a closed socket of an earlier connection on the same ports; it has no owner
            if s.local == want_local and s.remote == want_remote and s.state != TCP_TIME_WAIT:
                return s.uid
    if not readable:
        raise OSError(errno.ENOENT, f"none of {', '.join(tables)} can be read")
    return None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


# --- tokens ----------------------------------------------------------------------------------------------------------

def token_lifetime(profile: Profile, fallback: float = 3600.0) -> float:
    """How long a credential of this login lives (exp - iat of the current one), to scale the refresh margins to
    providers that issue tokens of a few minutes."""
    try:
        claims = jwt.decode(profile.token(), options={"verify_signature": False})
    except (jwt.PyJWTError, ProfileError):
        return fallback
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int | float) and isinstance(iat, int | float) and exp > iat:
        return float(exp - iat)
    return fallback


class Tokens:
    """The login's current credential. The credentials file is the truth: it is read again under the lock before
    every use, so a refresh by another `wardgate connect` (or a new `wardgate login`) is picked up, not undone."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.gateway = profile.gateway
        self.user = profile.user
        self._lock = threading.Lock()

    def margin(self) -> float:
        """Refresh a credential that expires within this: a minute, or a quarter of a short-lived token's life."""
        return max(MIN_MARGIN, min(REFRESH_MARGIN, token_lifetime(self.profile) / 4))

    def current(self, factor: float = 1.0) -> str:
        """Blocking (HTTP to the provider): call it in a thread. Raises ProfileError when the user must log in."""
        with self._lock:
            return fresh_token(self.profile, self.margin() * factor)


# --- the listener ----------------------------------------------------------------------------------------------------

class Listener:
    """One local listener for one connection of one gateway."""

    def __init__(self, profile: Profile, connection: str, port: int, host: str = LOCAL_HOST,
                 proc_tables: Sequence[str] = PROC_NET_TCP) -> None:
        if not profile.user:
            raise ProfileError(f"the login to {profile.gateway} names no user; run wardgate login again")
        self.tokens = Tokens(profile)
        self.connection = connection
        self.host = host
        self.port = port
        self.proc_tables = proc_tables
        self.gateway_host, self.gateway_port = split_host_port(profile.postgres)
        try:
            self.tls = ssl.create_default_context(cafile=profile.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ProfileError(f"cannot read the gateway's CA file {profile.ca_file}: {exc}") from None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._proc_warned = False
        self._uid = os.getuid()

    @property
    def user(self) -> str:
        return self.tokens.user

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=READ_SIZE)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {self.port} on {self.host} is in use (is another wardgate connect for it "
                                f"running?): choose another with --port N") from None
            raise
        self._refresher = asyncio.create_task(self._keep_fresh())

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in [*self._clients, *([self._refresher] if self._refresher else [])]:
            task.cancel()
        await asyncio.gather(*self._clients, *([self._refresher] if self._refresher else []),
                             return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # --- the token, kept fresh --------------------------------------------------------------------------------------

    async def _keep_fresh(self) -> None:
        """Refresh ahead of expiry (at twice the margin a connection uses), so that connections rarely wait for
        the provider and the refresh token, renewed with each refresh, never lapses while the listener runs."""
        last_error = ""
        while True:
            try:
                await asyncio.to_thread(self.tokens.current, 2.0)
                delay = self.tokens.profile.expires_in() - 2 * self.tokens.margin() + 0.5
                if last_error:
                    log.info("the login to %s works again", self.tokens.gateway)
                last_error = ""
            except ProfileError as exc:
                if str(exc) != last_error:
                    log.warning("cannot refresh the login: %s (new connections are refused once the token "
                                "expires, until it works again)", exc)
                last_error = str(exc)
                delay = 30.0
            except Exception:
                log.exception("unexpected error while refreshing the login")
                delay = 30.0
            # at most REFRESH_CHECK between looks: the monotonic clock stands still while a laptop sleeps
            await asyncio.sleep(min(REFRESH_CHECK, max(1.0, delay)))

    # --- one local client -------------------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer)
        except ConnectError as exc:
            log.info("client %s: %s", _addr(peer), exc.message.removeprefix("wardgate connect: "))
            await _tell(writer, exc.sqlstate, exc.message)
        except ProtocolViolation as exc:
            await _tell(writer, "08P01", f"wardgate connect: protocol violation: {exc}")
        except TimeoutError:
            await _tell(writer, "08P01", "wardgate connect: the client sent no startup packet in time")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # the listener is stopping. Not re-raised: Python 3.11's stream server asks a finished client task
            # for its exception, which raises again for a cancelled one and logs a traceback.
            pass
        except Exception:
            log.exception("unexpected error serving %s", _addr(peer))
            await _tell(writer, "XX000", "wardgate connect: internal error (see its log)")
        finally:
            self._clients.discard(task)
            _close(writer)

    def _check_peer(self, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        try:
            uid = socket_owner(peer[:2], local[:2], self.proc_tables)
        except OSError as exc:
            if not self._proc_warned:
                log.warning("cannot tell which local user connects (%s): accepting every local client", exc)
                self._proc_warned = True
            return
        if uid == self._uid:
            return
        if uid is None:
            raise ConnectError("28000", "wardgate connect: cannot tell which local user this connection belongs to; "
                                        "refused")
        log.warning("refused a connection of local user %s (%s)", user_name(uid), _addr(peer))
        raise ConnectError("28000", f"this listener belongs to user {user_name(self._uid)}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._check_peer(writer)
        async with asyncio.timeout(STARTUP_TIMEOUT):
            startup, rest = await self._read_startup(reader, writer)
        if startup is None:
            return
        params = self._gateway_params(startup.params)
        try:
            token = await asyncio.to_thread(self.tokens.current)
        except ProfileError as exc:
            raise ConnectError("28000", str(exc)) from None
        up_reader, up_writer = await self._open_gateway()
        try:
            async with asyncio.timeout(GATEWAY_TIMEOUT):
                first = await self._login(up_reader, up_writer, writer, startup, params, token)
            if first is None:
                return
            writer.write(first)
            if rest:
                up_writer.write(rest)
            await _relay(reader, writer, up_reader, up_writer)
        except TimeoutError:
            raise ConnectError("08001", f"wardgate connect: the gateway at {self._gateway()} did not complete the "
                                        f"login within {GATEWAY_TIMEOUT:g}s") from None
        finally:
            _close(up_writer)

    async def _read_startup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                            ) -> tuple[m.StartupMessage | None, bytes]:
        """The client's StartupMessage (and any bytes that came after it), or None after a CancelRequest."""
        startup = StartupReader()
        while True:
            packet = None
            while packet is None:
                data = await reader.read(4096)
                if not data:
                    raise ConnectionResetError
                packet = startup.feed(data)
            msg = decode.startup_packet(packet)
            if isinstance(msg, m.SSLRequest | m.GSSENCRequest):
                # loopback plaintext by design (see the module's docstring); the client goes on without encryption
                if startup.take_rest():
                    raise ProtocolViolation("data was sent after an encryption request before its answer")
                writer.write(b"N")
                await writer.drain()
                continue
            if isinstance(msg, m.CancelRequest):
                await self._forward_cancel(msg)
                return None, b""
            return msg, startup.take_rest()

    def _gateway_params(self, client: dict[str, str]) -> dict[str, str]:
        """The client's startup parameters for the gateway: the user is the login's, the database the connection.

        A client that names no database, or the libpq default (its user name), or this connection gets it; one
        that names another database is refused (3D000), rather than being given the connection under a name it
        did not ask for: a tool that lists or switches databases would otherwise show one connection as many."""
        asked = client.get("database", "")
        if asked and asked not in (self.connection, client.get("user", "")):
            raise ConnectError("3D000", f'wardgate connect: this listener serves connection "{self.connection}" '
                                        f'only, not "{asked}": connect with dbname={self.connection} (or run '
                                        f"wardgate connect {asked} for that one)")
        params = {"user": self.user, "database": self.connection}
        params.update((k, v) for k, v in client.items() if k not in ("user", "database"))
        return params

    def _gateway(self) -> str:
        h = self.gateway_host
        return f"[{h}]:{self.gateway_port}" if ":" in h else f"{h}:{self.gateway_port}"

    async def _open_gateway(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TLS connection to the gateway's PostgreSQL listener, its certificate and host name verified."""
        where = self._gateway()
        try:
            async with asyncio.timeout(GATEWAY_TIMEOUT):
                up_reader, up_writer = await asyncio.open_connection(self.gateway_host, self.gateway_port,
                                                                     limit=READ_SIZE)
                try:
                    up_writer.write(encode.ssl_request())
                    await up_writer.drain()
                    answer = await up_reader.read(1)
                    if answer != b"S":
                        raise ConnectError("08001", f"wardgate connect: the gateway at {where} does not offer TLS; "
                                                    f"no token is sent in plaintext")
                    await up_writer.start_tls(self.tls, server_hostname=self.gateway_host)
                except BaseException:
                    _close(up_writer)
                    raise
        except TimeoutError:
            raise ConnectError("08001", f"wardgate connect: the gateway at {where} did not answer within "
                                        f"{GATEWAY_TIMEOUT:g}s") from None
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError("08001", f"wardgate connect: cannot verify the gateway's certificate at {where}: "
                                        f"{exc.verify_message or exc.reason} (is the login's ca_file right?)") from None
        except ssl.SSLError as exc:
            raise ConnectError("08001", f"wardgate connect: TLS with the gateway at {where} failed: "
                                        f"{exc.reason or exc}") from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConnectError("08001", f"wardgate connect: cannot reach the gateway at {where}: {reason}") from None
        return up_reader, up_writer

    async def _login(self, up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter,
                     writer: asyncio.StreamWriter, startup: m.StartupMessage, params: dict[str, str],
                     token: str) -> bytes | None:
        """Log in at the gateway. Returns what to send the client first (AuthenticationOk and whatever came with
        it), or None when the gateway refused (its ErrorResponse went to the client as it was)."""
        version = (startup.major << 16) | startup.minor
        up_writer.write(encode.startup_message(params, version))
        await up_writer.drain()
        frames = FrameReader(MAX_AUTH_MESSAGE)
        answered = False
        while True:
            data = await up_reader.read(READ_SIZE)
            if not data:
                raise ConnectError("08006", f"wardgate connect: the gateway at {self._gateway()} closed the "
                                            f"connection during the login")
            got = frames.feed(data)
            for i, (kind, frame) in enumerate(got):
                if kind == m.ERROR_RESPONSE:
                    writer.write(frame)  # the gateway's own refusal (28P01...), as it is
                    await writer.drain()
                    return None
                if kind in (m.NOTICE_RESPONSE, m.NEGOTIATE_PROTOCOL_VERSION):
                    writer.write(frame)
                    continue
                if kind != m.AUTHENTICATION:
                    raise ConnectError("08P01", f"wardgate connect: the gateway sent {chr(kind)!r} before "
                                                f"the login completed")
                req = decode.auth_request(frame)
                if req.code == m.AUTH_OK:
                    return b"".join(f for _, f in got[i:]) + frames.take_rest()
                if req.code == m.AUTH_CLEARTEXT and not answered:
                    up_writer.write(encode.password_message(token.encode("utf-8")))
                    await up_writer.drain()
                    answered = True
                    continue
                raise ConnectError("28000", f"wardgate connect: the gateway at {self._gateway()} asked for "
                                            f"authentication method {req.code}; only a token (password) is "
                                            f"supported")

    async def _forward_cancel(self, msg: m.CancelRequest) -> None:
        """A CancelRequest goes to the gateway on a connection of its own: the keys the client holds are the
        gateway's (its BackendKeyData was relayed unchanged)."""
        try:
            up_reader, up_writer = await self._open_gateway()
        except ConnectError as exc:
            log.warning("cannot forward a cancel request: %s", exc.message)
            return
        try:
            up_writer.write(encode.cancel_request(msg.pid, msg.secret))
            await up_writer.drain()
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(5):
                    await up_reader.read(1)  # the gateway closes once it has acted
        finally:
            _close(up_writer)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(READ_SIZE):
        dst.write(data)
        await dst.drain()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    """Both directions, byte for byte, until either side closes (then the other is closed too)."""
    await writer.drain()
    await up_writer.drain()
    tasks = [asyncio.create_task(_pump(reader, up_writer)), asyncio.create_task(_pump(up_reader, writer))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _tell(writer: asyncio.StreamWriter, sqlstate: str, message: str) -> None:
    """A FATAL ErrorResponse to the local client, then the connection closes (never a silent close)."""
    if writer.is_closing():
        return
    with contextlib.suppress(ConnectionError, OSError):
        writer.write(encode.error_response(sqlstate, message, severity="FATAL"))
        await writer.drain()


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


def _addr(peer: Any) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
