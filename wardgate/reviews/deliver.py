"""Sending the notification outbox: webhooks over HTTP, mail over SMTP, retried with exponential backoff.

Every gateway runs one ``Deliverer`` task. It claims due rows of the outbox (so replicas share the work without
sending a row twice at once), sends each, and records the outcome: sent, due again after ``retry_after`` x 2^n
(at most 10 minutes), or given up after ``max_attempts`` (an audit event says so). Delivery runs beside the
relay and never inside a review's decision: a dead receiver delays nothing but its own messages.

JSON webhooks are signed: ``X-Wardgate-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's
secret>``, with ``X-Wardgate-Event`` and ``X-Wardgate-Delivery`` (the outbox id, the same on every retry).
Errors are recorded without the URL, which for Slack is itself a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import smtplib
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage

import httpx

from ..config import EmailConfig, NotificationsConfig, parse_host_port
from ..store import StoreError
from ..store.db import now
from ..store.notifications import Delivery, Outbox

log = logging.getLogger("wardgate.notify")

MAX_DELAY = 600.0
POLL_SECONDS = 1.0
CLAIM_SECONDS = 120.0  # longer than any one delivery's timeout


class DeliveryError(Exception):
    """A delivery that did not go through; the message is safe to record (no URL, no secret)."""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(cfg: NotificationsConfig, attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones; None: give up."""
    if attempts >= cfg.max_attempts:
        return None
    return float(min(MAX_DELAY, cfg.retry_after * 2 ** (attempts - 1)))


class Deliverer:
    def __init__(self, cfg: NotificationsConfig, outbox: Outbox, gave_up: Callable[[Delivery, str], None]) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.gave_up = gave_up
        self.hooks = {h.name: h for h in cfg.webhooks}

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while not stop.is_set():
                try:
                    due = await loop.run_in_executor(None, self.outbox.claim, 20, CLAIM_SECONDS)
                except StoreError as exc:
                    log.warning("cannot read the notification outbox: %s", exc)
                    due = []
                for d in due:
                    await self._one(client, d)
                if not due:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), POLL_SECONDS)

    async def _one(self, client: httpx.AsyncClient, d: Delivery) -> None:
        loop = asyncio.get_running_loop()
        try:
            if d.channel == "email":
                if self.cfg.email is None:
                    raise DeliveryError("mail is no longer configured")
                await loop.run_in_executor(None, send_mail, self.cfg.email, d.payload)
            else:
                await self._webhook(client, d)
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        else:
            await loop.run_in_executor(None, self.outbox.sent, d.id)
            return
        attempts = d.attempts + 1
        delay = backoff(self.cfg, attempts)
        retry_at = None if delay is None else now() + timedelta(seconds=delay)
        log.warning("notification %d (%s, %s) failed (attempt %d): %s", d.id, d.channel, d.event, attempts, error)
        try:
            await loop.run_in_executor(None, self.outbox.failed, d.id, error, retry_at)
        except StoreError as exc:
            log.error("cannot record the failed notification %d: %s", d.id, exc)
            return
        if retry_at is None:
            self.gave_up(d, error)

    async def _webhook(self, client: httpx.AsyncClient, d: Delivery) -> None:
        hook = self.hooks.get(d.channel)
        if hook is None:
            raise DeliveryError(f"webhook {d.channel} is no longer configured")
        body = d.payload.encode()
        headers = {"Content-Type": "application/json", "User-Agent": "wardgate", "X-Wardgate-Event": d.event,
                   "X-Wardgate-Delivery": str(d.id)}
        if hook.secret is not None:
            headers["X-Wardgate-Signature"] = signature(hook.secret.value, body)
        try:
            r = await client.post(hook.url, content=body, headers=headers, timeout=hook.timeout)
        except httpx.TimeoutException:
            raise DeliveryError(f"no answer within {hook.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"cannot reach the receiver ({exc.__class__.__name__})") from None
        if not 200 <= r.status_code < 300:
            raise DeliveryError(f"the receiver answered HTTP {r.status_code}")


def send_mail(cfg: EmailConfig, payload: str) -> None:
    """One message over SMTP (blocking: run it in an executor)."""
    data = json.loads(payload)
    msg = EmailMessage()
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(data["to"])
    msg["Subject"] = data["subject"]
    msg.set_content(data["body"])
    host, port = parse_host_port(cfg.server)
    try:
        with smtplib.SMTP(host, port, timeout=cfg.timeout) as smtp:
            if cfg.starttls:
                smtp.starttls()
            if cfg.username:
                smtp.login(cfg.username, cfg.password.value if cfg.password else "")
            smtp.send_message(msg)
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"SMTP: {exc.__class__.__name__}") from None
    except OSError as exc:
        raise DeliveryError(f"cannot reach the mail server ({exc.strerror or exc.__class__.__name__})") from None
