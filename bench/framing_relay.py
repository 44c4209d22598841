"""The floor the benchmark measures wardgate against: a relay that only frames PostgreSQL messages.

    python bench/framing_relay.py PORT [UPSTREAM_HOST UPSTREAM_PORT]

asyncio Protocols on uvloop, each side's bytes cut into whole messages and written on as one piece; no TLS, no
authentication of its own, no decisions, no audit. Issue 3 quotes such a relay's figures as the reference for what
a Python gateway can reach; running it beside wardgate in the same benchmark gives that reference on the machine
at hand, so the cost of wardgate's own work (tracking, policy, audit) reads as the difference.
"""

from __future__ import annotations

import asyncio
import struct
import sys

import uvloop

_LENGTH = struct.Struct("!I").unpack_from


class _Side(asyncio.Protocol):
    def __init__(self, untyped_first: bool) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.buf = b""
        self.untyped_first = untyped_first  # a client opens with a startup packet, which has no type byte
        self.backlog: list[bytes] = []
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, end, out = 0, len(buf), []
        if self.untyped_first and end >= 4:
            (n,) = _LENGTH(buf, 0)
            if n > end:
                self.buf = buf
                return
            out.append(buf[:n])
            pos = n
            if n != 8:  # an SSLRequest (length 8) is followed by another untyped packet
                self.untyped_first = False
        while end - pos >= 5:
            stop = pos + 1 + _LENGTH(buf, pos + 1)[0]
            if stop > end:
                break
            out.append(buf[pos:stop])
            pos = stop
        self.buf = buf[pos:]
        if out:
            self.send(b"".join(out))

    def send(self, data: bytes) -> None:
        peer = self.peer
        assert peer is not None
        if peer.transport is None:
            peer.backlog.append(data)
        else:
            peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def main(port: int, upstream: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()

    def client() -> _Side:
        side, up = _Side(untyped_first=True), _Side(untyped_first=False)
        side.peer, up.peer = up, side

        async def connect() -> None:
            await loop.create_connection(lambda: up, *upstream)
            assert up.transport is not None
            for data in up.backlog:
                up.transport.write(data)
            up.backlog.clear()

        side.connecting = loop.create_task(connect())
        return side

    server = await loop.create_server(client, "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    up_port = int(sys.argv[3]) if len(sys.argv) > 3 else 5432
    uvloop.run(main(int(sys.argv[1]), (host, up_port)))
