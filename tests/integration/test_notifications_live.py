"""Review notifications on a live gateway, to a real HTTP receiver and a real SMTP server (aiosmtpd): requests
reach the reviewers, decisions the requester; JSON webhooks are signed; a receiver that fails is retried with
backoff and one that never answers is given up on (recorded) without delaying the review; nothing secret and no
statement literal leaves in a notification."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import Gateway, UpstreamDB, flush_wait, free_port, run_gateway, unique
from wardgate.store.notifications import Outbox
from wardgate.store.reviews import ReviewStore

SECRET = "whsec-0123456789abcdef"


class Receiver:
    """An HTTP server that records what it is sent; paths listed in ``fail`` answer 500 that many times."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        self.fail: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                left = outer.fail.get(self.path, 0)
                if left:
                    outer.fail[self.path] = left - 1
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.got.append((self.path, dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def on(self, path: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(h, json.loads(b)) for p, h, b in self.got if p == path]


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=email_policy.default)))
        return "250 OK"


@pytest.fixture(scope="module")
def setup(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Receiver,
                                                                                            Mailbox]]:
    with upstream.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS refunds (id int PRIMARY KEY, amount int)")
        conn.execute("INSERT INTO refunds VALUES (1, 500) ON CONFLICT DO NOTHING")
    tmp = tmp_path_factory.mktemp("notify")
    (tmp / "hook.secret").write_text(SECRET + "\n")
    secret = f"file:{tmp / 'hook.secret'}"
    rx = Receiver()
    (tmp / "slack.url").write_text(f"http://127.0.0.1:{rx.port}/slack\n")
    box = Mailbox()
    smtp_port = free_port()
    mail = Controller(box, hostname="127.0.0.1", port=smtp_port)
    mail.start()
    extra = {
        "rules": [{"name": "refunds-need-review", "action": "review", "reason": "refunds move money",
                   "when": {"kinds": ["update"], "tables": ["refunds"]},
                   "review": {"approvers": ["sre"], "expires_after": "60s"}}],
        "notifications": {
            "retry_after": "0.2s", "max_attempts": 3,
            "webhooks": [
                {"name": "audit-hook", "url": f"http://127.0.0.1:{rx.port}/hook", "secret": secret},
                {"name": "chat", "url": f"file:{tmp / 'slack.url'}", "format": "slack", "events": ["review_requested"]},
                {"name": "dead", "url": f"http://127.0.0.1:{free_port()}/nobody", "secret": secret},
            ],
            "email": {"server": f"127.0.0.1:{smtp_port}", "sender": "wardgate@example.com",
                      "reviewers": {"sre": ["sre-oncall@example.com"], "dba": ["dba@example.com"]},
                      "requesters": {}},
        },
    }
    try:
        with run_gateway(tmp / "gw", upstream, extra=extra) as gw:
            yield gw, rx, box
    finally:
        mail.stop()
        rx.server.shutdown()


def test_request_and_decision_are_notified_signed_retried_and_given_up(
        setup: tuple[Gateway, Receiver, Mailbox], upstream: UpstreamDB) -> None:
    gw, rx, box = setup
    user, reviewer = unique("req"), unique("sre")
    rx.fail["/hook"] = 2  # the first two deliveries to it fail: retried with backoff
    rs = ReviewStore(gw.store())
    with psycopg.connect(gw.dsn(user, gw.token(user)), autocommit=True) as conn:
        out: dict[str, Any] = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", conn.execute("UPDATE refunds SET amount = 0 WHERE id = 1").rowcount), daemon=True)
        t.start()
        review = flush_wait(lambda: next((r for r in rs.list("pending") if r.requester == user), None), 15)
        assert review is not None
        hooks = flush_wait(lambda: rx.on("/hook"), 15)
        (headers, body), = hooks
        raw = json.dumps(body, sort_keys=True).encode()
        assert headers["X-Wardgate-Event"] == "review_requested"
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Wardgate-Signature"], expected)
        assert body["review"]["id"] == review.id and body["review"]["statement"] == (
            "UPDATE refunds SET amount = $1 WHERE id = $2")
        (_, slack), = flush_wait(lambda: rx.on("/slack"), 15)
        assert f"asks for review {review.id}" in slack["text"] and "refunds-need-review" in slack["text"]
        (rcpt, msg), = flush_wait(lambda: box.messages, 15)
        assert rcpt == ["sre-oncall@example.com"] and msg["From"] == "wardgate@example.com"
        assert msg["Subject"].strip() == f"wardgate: review {review.id} requested by {user} (refunds-need-review)"
        assert "UPDATE refunds SET amount = $1 WHERE id = $2" in msg.get_content()
        res = gw.cli("reviews", "approve", review.id, "--token", gw.token(reviewer, "sre"))
        assert "approved" in res.stdout
        t.join(15)  # the dead webhook delays nothing
        assert out.get("r") == 1
    decided = flush_wait(lambda: [b for h, b in rx.on("/hook") if h["X-Wardgate-Event"] == "review_decided"], 15)
    assert decided[0]["review"]["status"] == "approved" and decided[0]["review"]["decided_by"] == [reviewer]
    outbox = Outbox(gw.store())
    rows = flush_wait(lambda: [r for r in outbox.of_review(review.id) if r["channel"] == "dead"
                               and r["status"] == "failed" and r["event"] == "review_decided"], 20)
    assert rows and rows[0]["attempts"] == 3 and "cannot reach the receiver" in str(rows[0]["last_error"])
    hook_rows = [r for r in outbox.of_review(review.id) if r["channel"] == "audit-hook"]
    assert [(r["event"], r["status"]) for r in hook_rows] == [("review_requested", "sent"), ("review_decided", "sent")]
    assert hook_rows[0]["attempts"] == 3  # two 500s, then delivered
    failed = flush_wait(lambda: [e for e in gw.store().events(kind="notification_failed")
                                 if e["detail"]["review"] == review.id], 20)
    assert {e["detail"]["channel"] for e in failed} == {"dead"}
    # No literal of the statement and no secret in anything sent or queued.
    everything = json.dumps([r["payload"] for r in outbox.of_review(review.id)]) + json.dumps(rx.got, default=str)
    assert "amount = 0" not in everything and SECRET not in everything
    assert str(Path(gw.config_path).parent) not in everything
