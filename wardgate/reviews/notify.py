"""What review notifications say, per channel. Pure: the payloads are built here and queued in the store's
outbox; ``reviews.deliver`` sends them.

Nothing secret goes out: the statement appears with its literals replaced by ``$n`` (the exact text stays in the
store), and tokens never appear. JSON webhooks get the request's public fields; Slack-compatible webhooks a
``text``; mail a subject and a body, to the approver groups' addresses (requested) or the requester's
(decided).
"""

from __future__ import annotations

import json
from typing import Any

from ..config import NotificationsConfig
from .model import APPROVED, DENIED

REQUESTED, DECIDED = "review_requested", "review_decided"


def messages(cfg: NotificationsConfig, event: str, review: dict[str, Any], gateway: str) -> list[tuple[str, str]]:
    """(channel, payload) for every channel subscribed to ``event``; ``review`` is ``Review.public()``."""
    out: list[tuple[str, str]] = []
    for hook in cfg.webhooks:
        if event not in hook.events:
            continue
        if hook.format == "slack":
            out.append((hook.name, json.dumps({"text": _line(event, review)})))
        else:
            out.append((hook.name, json.dumps({"event": event, "gateway": gateway, "review": review},
                                              default=str, sort_keys=True)))
    mail = cfg.email
    if mail is not None and event in mail.events:
        if event == REQUESTED:
            to = sorted({a for g in review["approvers"] for a in mail.reviewers.get(g, [])})
        else:
            address = mail.requesters.get(review["requester"])
            to = [address] if address else []
        if to:
            out.append(("email", json.dumps({"to": to, "subject": _subject(event, review),
                                             "body": _body(event, review)})))
    return out


def _line(event: str, r: dict[str, Any]) -> str:
    if event == REQUESTED:
        return (f"wardgate: {r['requester']} asks for review {r['id']} on {r['connection']} (rule {r['rule']}): "
                f"`{r['statement']}`" + (f" — reason: {r['reason']}" if r.get("reason") else "")
                + f". Approve: wardgate reviews approve {r['id']}")
    return f"wardgate: review {r['id']} of {r['requester']} on {r['connection']} is {_outcome(r)}"


def _outcome(r: dict[str, Any]) -> str:
    status = r["status"]
    if status == APPROVED:
        return f"approved by {', '.join(r['decided_by'])}"
    if status == DENIED:
        return f"denied by {', '.join(r['decided_by'])}" + (f": {r['decision_reason']}" if r["decision_reason"] else "")
    return str(status)


def _subject(event: str, r: dict[str, Any]) -> str:
    if event == REQUESTED:
        return f"wardgate: review {r['id']} requested by {r['requester']} ({r['rule']})"
    return f"wardgate: your review {r['id']} is {r['status']}"


def _body(event: str, r: dict[str, Any]) -> str:
    lines = [_line(event, r), "", f"connection: {r['connection']}", f"rule: {r['rule']} ({r['rule_reason']})",
             f"statement: {r['statement']}", f"requested by: {r['requester']}", f"reason: {r.get('reason') or '-'}",
             f"needs: {r['min_approvals']} approval(s) from {', '.join(r['approvers'])}"
             + (" (one from each group)" if r["all_groups"] else ""), f"expires: {r['expires_at']}"]
    if event == DECIDED:
        lines.append(f"decided: {r['decided_at']} by {', '.join(r['decided_by']) or '-'}")
    return "\n".join(lines) + "\n"
