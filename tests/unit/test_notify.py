"""What review notifications say and when they are retried (wardgate.reviews.notify, .deliver)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wardgate.config import NotificationsConfig
from wardgate.reviews.deliver import backoff, signature
from wardgate.reviews.notify import DECIDED, REQUESTED, messages

REVIEW: dict[str, Any] = {
    "id": "abc123", "status": "pending", "requester": "ann", "connection": "shop", "rule": "orders",
    "rule_reason": "money", "statement": "DELETE FROM orders WHERE id = $1", "reason": "INC-1",
    "approvers": ["sre", "dba"], "min_approvals": 1, "all_groups": False, "expires_at": "2026-11-29T17:00:00+00:00",
    "decided_at": None, "decided_by": [], "decision_reason": None,
}


def cfg(tmp_path: Path, **kw: Any) -> NotificationsConfig:
    (tmp_path / "s").write_text("0123456789abcdef0123")
    base: dict[str, Any] = {"webhooks": [
        {"name": "j", "url": "https://h.example/x", "secret": f"file:{tmp_path / 's'}"},
        {"name": "s", "url": "https://hooks.example/T/B/x", "format": "slack", "events": ["review_decided"]}],
        "email": {"server": "mail.example:25", "sender": "wg@example.com",
                  "reviewers": {"sre": ["a@example.com"], "dba": ["b@example.com", "a@example.com"]},
                  "requesters": {"ann": "ann@example.com"}}}
    base.update(kw)
    return NotificationsConfig.model_validate(base, context={"base": tmp_path})


def test_requested_goes_to_subscribed_hooks_and_the_approvers_addresses(tmp_path: Path) -> None:
    out = dict(messages(cfg(tmp_path), REQUESTED, REVIEW, "gw1"))
    assert set(out) == {"j", "email"}  # the slack hook only wants decisions
    assert json.loads(out["j"]) == {"event": REQUESTED, "gateway": "gw1", "review": REVIEW}
    mail = json.loads(out["email"])
    assert mail["to"] == ["a@example.com", "b@example.com"]
    assert "DELETE FROM orders WHERE id = $1" in mail["body"] and "INC-1" in mail["body"]


def test_decided_goes_to_the_requester(tmp_path: Path) -> None:
    decided = {**REVIEW, "status": "denied", "decided_by": ["bob"], "decision_reason": "no"}
    out = dict(messages(cfg(tmp_path), DECIDED, decided, "gw1"))
    assert json.loads(out["s"]) == {"text": "wardgate: review abc123 of ann on shop is denied by bob: no"}
    assert json.loads(out["email"])["to"] == ["ann@example.com"]
    unknown = {**decided, "requester": "zed"}
    assert "email" not in dict(messages(cfg(tmp_path), DECIDED, unknown, "gw1"))


def test_backoff_doubles_up_to_the_cap_then_gives_up(tmp_path: Path) -> None:
    c = cfg(tmp_path, max_attempts=12, retry_after=2)
    assert [backoff(c, n) for n in range(1, 13)] == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, None]


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    assert signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


@pytest.mark.parametrize(("hook", "problem"), [
    ({"name": "j", "url": "https://h.example/x"}, "needs a secret"),
    ({"name": "j", "url": "ftp://h.example/x", "format": "slack"}, "url"),
    ({"name": "email", "url": "https://h.example/x", "format": "slack"}, "distinct"),
])
def test_bad_webhooks(tmp_path: Path, hook: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        NotificationsConfig.model_validate({"webhooks": [hook]}, context={"base": tmp_path})
