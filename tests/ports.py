"""Free TCP ports for the servers tests start (gateways, identity providers, private clusters)."""

from __future__ import annotations

import socket

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now on 127.0.0.1, and never one this process handed out before: a test that takes two (a
    gateway's PostgreSQL and API listeners, an identity provider's) before any binds would otherwise be given
    the same one twice."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
