"""Records POSTed in batches to an HTTPS receiver, as one JSON array per request, signed.

Headers of every request:

- ``X-Wardgate-Timestamp``: Unix seconds when this attempt was made;
- ``X-Wardgate-Signature: sha256=<hex HMAC-SHA256 of "TIMESTAMP.BODY" with the sink's secret>``: the timestamp is
  inside the signed material, so a receiver that rejects stale timestamps cannot be fed an old batch again;
- ``X-Wardgate-Delivery``: the batch's id (a digest of the body), the same on every retry, for deduplication;
- ``Authorization``: the configured secret value, when the receiver wants one (a SIEM's collector token).

A batch is sent when ``batch_size`` records wait or ``flush_interval`` after its first record; a failure (no
answer within ``timeout``, a refused connection, a non-2xx answer) is retried after ``backoff`` x 2^n, and after
``retries`` the batch is counted failed. Error messages never hold the URL's path or query (a receiver's token
can live there) nor any header.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from ...config import WebhookSinkConfig
from .delivery import SinkError
from .records import SinkRecord


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``TIMESTAMP.BODY``."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def body_of(batch: Sequence[SinkRecord]) -> bytes:
    """The records as one JSON array, each exactly as a JSON line of `audit export` has it."""
    return ("[" + ",".join(r.line for r in batch) + "]").encode()


def redacted(url: str) -> str:
    """Where a URL goes, for messages: scheme, host and port only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class WebhookTransport:
    retries: int | None

    def __init__(self, cfg: WebhookSinkConfig) -> None:
        self.cfg = cfg
        self.batch_size = cfg.batch_size
        self.linger = cfg.flush_interval
        self.retries = cfg.retries
        self.backoff = cfg.backoff
        self.where = redacted(cfg.url)
        self._secret = cfg.secret.value.encode()
        verify: ssl.SSLContext | bool = True
        if cfg.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(cfg.ca_file))
        self._client = httpx.Client(verify=verify, follow_redirects=False, timeout=cfg.timeout)

    def send(self, batch: Sequence[SinkRecord]) -> None:
        body = body_of(batch)
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "wardgate",
                   "X-Wardgate-Timestamp": stamp, "X-Wardgate-Signature": signature(self._secret, stamp, body),
                   "X-Wardgate-Delivery": hashlib.sha256(body).hexdigest()[:32]}
        if self.cfg.authorization is not None:
            headers["Authorization"] = self.cfg.authorization.value
        try:
            r = self._client.post(self.cfg.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise SinkError(f"{self.where}: no answer within {self.cfg.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise SinkError(f"{self.where}: cannot reach the receiver ({exc.__class__.__name__})") from None
        if not 200 <= r.status_code < 300:
            raise SinkError(f"{self.where}: the receiver answered HTTP {r.status_code}")

    def close(self) -> None:
        self._client.close()
