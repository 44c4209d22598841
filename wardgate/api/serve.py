"""The HTTP API inside the gateway's event loop (uvicorn, no process or thread of its own)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn

from ..config import Config, parse_host_port
from ..pipeline import Pipeline
from .app import create_app


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling: the gateway owns SIGINT/SIGTERM and stops the API itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def api_server(config: Config, pipeline: Pipeline) -> EmbeddedServer | None:
    """The API server of ``listen.api`` (TLS with the gateway's certificate when it has one), or None."""
    if config.listen.api is None:
        return None
    host, port = parse_host_port(config.listen.api)
    tls: dict[str, str] = {}
    if config.tls_enabled:
        cert, key = config.tls_files()
        tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    ucfg = uvicorn.Config(create_app(config, pipeline), host=host, port=port, loop="none", lifespan="off",
                          log_config=None, access_log=False, server_header=False, **tls)  # type: ignore[arg-type]
    return EmbeddedServer(ucfg)
