"""OCSF events from audit export records, for SIEMs (`wardgate audit export --format ocsf`).

Pinned to **OCSF 1.3.0** (``OCSF_VERSION``): every class, activity, attribute and enum value used here exists in
that version of the schema (github.com/ocsf/ocsf-schema, tag v1.3.0), and ``metadata.version`` says so, so a
consumer knows exactly which attributes to expect. A newer OCSF release is a new pin, not a silent drift.

One export record (``export.records``) becomes one OCSF event:

- ``statement`` -> Datastore Activity (6005), the activity from the statement's kind (``select`` is Query,
  ``insert`` Write, ``delete`` Delete...; kinds with no OCSF activity are Other with the kind as
  ``activity_name``); the policy's decision as the Security Control profile's ``action_id``/``disposition_id``;
  the text exactly as recorded (literals already replaced by ``$n``) in ``query_info.query_string``.
- ``session_start`` -> Datastore Activity: Connect; ``session_end`` -> Datastore Activity: Other, named
  ``Disconnect`` (6005 has no disconnect activity in any release).
- ``auth_failed`` -> Authentication (3002): Logon, Failure; ``connection_refused``/``session_refused`` ->
  Datastore Activity: Connect, Failure; ``service_account_*`` -> Account Change (3001); ``config_loaded`` (written
  once at every gateway start) -> Application Lifecycle (6002): Start; every other event about a connection ->
  Datastore Activity: Other, its kind as ``activity_name``; an event about no connection (``audit_pruned``,
  ``notification_failed``) -> Base Event (0): Other.

Nothing is made up: an attribute whose value the record does not hold is left out, even where OCSF requires it
(docs/audit.md lists where that happens), and what OCSF has no place for (the rule, the masking, the row count)
goes, as recorded, into ``unmapped``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import metadata as _dist
from typing import Any

OCSF_VERSION = "1.3.0"
PRODUCT_NAME = "wardgate"
VENDOR_NAME = "wardgate"  # an open-source project: the project is its own vendor

BASE_EVENT = 0
ACCOUNT_CHANGE = 3001
AUTHENTICATION = 3002
APPLICATION_LIFECYCLE = 6002
DATASTORE_ACTIVITY = 6005

# class_uid -> (class caption, category_uid, category caption), as OCSF 1.3.0 names them
CLASSES: dict[int, tuple[str, int, str]] = {
    BASE_EVENT: ("Base Event", 0, "Uncategorized"),
    ACCOUNT_CHANGE: ("Account Change", 3, "Identity & Access Management"),
    AUTHENTICATION: ("Authentication", 3, "Identity & Access Management"),
    APPLICATION_LIFECYCLE: ("Application Lifecycle", 6, "Application Activity"),
    DATASTORE_ACTIVITY: ("Datastore Activity", 6, "Application Activity"),
}
OTHER = 99
# class_uid -> the activity_id captions this module uses (each is in that class's 1.3.0 enum)
ACTIVITIES: dict[int, dict[int, str]] = {
    BASE_EVENT: {OTHER: "Other"},
    ACCOUNT_CHANGE: {1: "Create", 5: "Disable", OTHER: "Other"},
    AUTHENTICATION: {1: "Logon"},
    APPLICATION_LIFECYCLE: {3: "Start"},
    DATASTORE_ACTIVITY: {1: "Read", 2: "Update", 3: "Connect", 4: "Query", 5: "Write", 6: "Create", 7: "Delete",
                         OTHER: "Other"},
}
READ, UPDATE, CONNECT, QUERY, WRITE, CREATE, DELETE = 1, 2, 3, 4, 5, 6, 7
# A statement's kind (policy/analyze.py) -> its Datastore Activity. Only kinds whose effect on the datastore is
# plain are mapped; the rest (copy, call, do, grant, set, transaction, explain, unparsed...) are Other, with the
# kind itself as activity_name, rather than a guess.
STATEMENT_ACTIVITY: dict[str, int] = {
    "select": QUERY, "fetch": READ,
    "insert": WRITE, "merge": WRITE,
    "update": UPDATE, "alter": UPDATE,
    "create": CREATE,
    "delete": DELETE, "truncate": DELETE, "drop": DELETE,
}

SUCCESS, FAILURE = 1, 2
STATUS = {SUCCESS: "Success", FAILURE: "Failure"}
INFORMATIONAL, LOW = 1, 2
SEVERITY = {INFORMATIONAL: "Informational", LOW: "Low"}
# Security Control profile (6005 carries it in 1.3.0): what the gateway's policy did
ALLOWED, DENIED = 1, 2
ACTION = {ALLOWED: "Allowed", DENIED: "Denied"}
D_ALLOWED, D_BLOCKED, D_APPROVED, D_DELAYED = 1, 2, 8, 14
DISPOSITION = {D_ALLOWED: "Allowed", D_BLOCKED: "Blocked", D_APPROVED: "Approved", D_DELAYED: "Delayed"}
DATABASE_TYPE_ID, DATABASE_TYPE = 1, "Relational"  # database.type_id: PostgreSQL (and MySQL) are relational
DATASTORE_TYPE_ID, DATASTORE_TYPE = 1, "Database"  # 6005 type_id: the activity is on a database

ACCOUNT_ACTIVITY = {"service_account_created": 1, "service_account_disabled": 5, "service_account_changed": OTHER}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _version() -> str | None:
    try:
        return _dist.version(PRODUCT_NAME)
    except _dist.PackageNotFoundError:
        return None


_PRODUCT_VERSION = _version()


def epoch_ms(iso: str) -> int:
    """An export time (ISO 8601, UTC) as OCSF's timestamp_t: whole milliseconds since the epoch."""
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def endpoint(addr: str | None) -> dict[str, Any] | None:
    """``host:port`` as the gateway records a client (``::1:5432`` for IPv6) -> ``{ip, port}``; None for what
    is not an address (``cli``, ``local``, ``http``): OCSF's endpoint is a network address, and none is known."""
    if not addr:
        return None
    host, sep, port = addr.rpartition(":")
    candidates = [(host, port)] if sep else []
    candidates.append((addr, ""))  # an address recorded without its port
    for candidate, p in candidates:
        try:
            ip = ipaddress.ip_address(candidate.strip("[]"))
        except ValueError:
            continue
        out: dict[str, Any] = {"ip": str(ip)}
        if p.isdigit() and int(p) <= 65535:
            out["port"] = int(p)
        return out
    return None


def _parsed(value: Any) -> Any:
    """The record keeps JSON columns (groups, masked, detail) as text; OCSF consumers want the structure."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _clean(value: Any) -> Any:
    """Drop None and empty objects/lists at every depth: an absent value is left out, never written as null."""
    if isinstance(value, dict):
        return {k: c for k, v in value.items() if (c := _clean(v)) is not None and c not in ({}, [])}
    if isinstance(value, list):
        return [c for v in value if (c := _clean(v)) is not None]
    return value


def _base(record: dict[str, Any], class_uid: int, activity_id: int, activity_name: str | None = None
          ) -> dict[str, Any]:
    class_name, category_uid, category_name = CLASSES[class_uid]
    caption = ACTIVITIES[class_uid][activity_id]
    session = record.get("session_id")
    return {
        "class_uid": class_uid, "class_name": class_name,
        "category_uid": category_uid, "category_name": category_name,
        "activity_id": activity_id, "activity_name": activity_name or caption,
        "type_uid": class_uid * 100 + activity_id, "type_name": f"{class_name}: {caption}",
        "time": epoch_ms(record["time"]),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME, "version": _PRODUCT_VERSION},
            "event_code": record["type"],  # the record's own type, as `audit export` names it
            "original_time": record["time"],
            "correlation_uid": session,  # every record of one session shares it
        },
    }


def _status(event: dict[str, Any], status_id: int, severity_id: int) -> None:
    event["status_id"], event["status"] = status_id, STATUS[status_id]
    event["severity_id"], event["severity"] = severity_id, SEVERITY[severity_id]


def _control(event: dict[str, Any], action_id: int, disposition_id: int) -> None:
    event["action_id"], event["action"] = action_id, ACTION[action_id]
    event["disposition_id"], event["disposition"] = disposition_id, DISPOSITION[disposition_id]
    event["metadata"]["profiles"] = ["security_control"]


def _user(record: dict[str, Any]) -> dict[str, Any] | None:
    name = record.get("user")
    if not name:
        return None
    groups = _parsed(record.get("groups"))
    return {"name": name, "groups": [{"name": g} for g in groups] if isinstance(groups, list) else None}


def _actor(record: dict[str, Any], *, session_created: bool = False) -> dict[str, Any]:
    session = record.get("session_id")
    issuer = record.get("issuer")
    return {
        "user": _user(record),
        "session": {"uid": session, "created_time": epoch_ms(record["time"]) if session_created else None}
        if session else None,
        "idp": {"uid": issuer} if issuer else None,  # who vouched for the user: an OIDC issuer, or "wardgate"
        "app_name": record.get("application_name") or None,  # the client application, as the client named it
    }


def _datastore(event: dict[str, Any], record: dict[str, Any], addr: str | None) -> None:
    """What every Datastore Activity carries: who, from where, on which database."""
    event["actor"] = _actor(record, session_created=record["type"] == "session_start")
    event["src_endpoint"] = endpoint(addr)
    if record.get("connection"):
        # The gateway's name for the upstream database (its configured connection), not the server's own name
        # for it, which the audit does not record.
        event["database"] = {"name": record["connection"], "type_id": DATABASE_TYPE_ID, "type": DATABASE_TYPE}
        event["type_id"], event["type"] = DATASTORE_TYPE_ID, DATASTORE_TYPE


def _statement(record: dict[str, Any], addr: str | None) -> dict[str, Any]:
    kind = record.get("kind") or ""
    activity = STATEMENT_ACTIVITY.get(kind, OTHER)
    event = _base(record, DATASTORE_ACTIVITY, activity, kind if activity == OTHER else None)
    status = record.get("status")
    decision = record.get("decision")
    _status(event, SUCCESS if status == "ok" else FAILURE, LOW if status == "denied" else INFORMATIONAL)
    event["status_code"] = record.get("sqlstate")
    event["status_detail"] = record.get("error_message") or record.get("reason")
    ran = status in ("ok", "error")  # it reached the database (an error is the database's answer)
    if status == "denied" or decision == "deny":
        _control(event, DENIED, D_BLOCKED)
    elif decision == "review":
        # approved and run; or held for a review that never let it run (pending, client gone, message refused)
        _control(event, *((ALLOWED, D_APPROVED) if ran else (DENIED, D_DELAYED)))
    elif decision == "allow":
        _control(event, ALLOWED, D_ALLOWED)
    _datastore(event, record, addr)
    if record.get("statement") is not None:  # NULL when the text could not even be lexed: nothing to show
        seq = record.get("seq")
        event["query_info"] = {
            "query_string": record["statement"],
            "uid": f"{record['session_id']}:{seq}" if record.get("session_id") and seq is not None else None,
        }
    if record.get("duration_ms") is not None:
        event["duration"] = round(record["duration_ms"])
    event["unmapped"] = {
        "kind": kind, "status": status, "decision": decision, "rule": record.get("rule"),
        "reason": record.get("reason"), "rows": record.get("rows"), "duration_ms": record.get("duration_ms"),
        "masked": _parsed(record.get("masked")), "seq": record.get("seq"),
    }
    return event


def _session_start(record: dict[str, Any], addr: str | None) -> dict[str, Any]:
    event = _base(record, DATASTORE_ACTIVITY, CONNECT)
    _status(event, SUCCESS, INFORMATIONAL)
    _control(event, ALLOWED, D_ALLOWED)  # the gateway authenticated and admitted the session
    _datastore(event, record, addr)
    event["unmapped"] = {"auth_method": record.get("auth_method")}
    return event


def _session_end(record: dict[str, Any], addr: str | None) -> dict[str, Any]:
    event = _base(record, DATASTORE_ACTIVITY, OTHER, "Disconnect")
    event["severity_id"], event["severity"] = INFORMATIONAL, SEVERITY[INFORMATIONAL]
    _datastore(event, record, addr)
    detail = _parsed(record.get("detail"))
    event["unmapped"] = {"end_reason": record.get("end_reason"), **(detail if isinstance(detail, dict) else {})}
    return event


def _event(record: dict[str, Any], addr: str | None) -> dict[str, Any]:
    kind = record["type"]
    detail = _parsed(record.get("detail"))
    reason = detail.get("reason") if isinstance(detail, dict) else None
    failed = kind.endswith(("_failed", "_refused"))
    status_id, severity_id = (FAILURE, LOW) if failed else (SUCCESS, INFORMATIONAL)
    unmapped: dict[str, Any] = {"detail": detail}
    connection, user = record.get("connection"), record.get("user")
    if kind == "auth_failed":
        event = _base(record, AUTHENTICATION, 1)
        event["user"] = {"name": user} if user else None  # a refused token may name nobody
        # what the user tried to reach: the connection, or the gateway itself (HTTP API, `wardgate reviews`)
        event["service"] = {"name": connection or PRODUCT_NAME}
        event["src_endpoint"] = endpoint(addr)
        event["status_detail"] = reason
        unmapped["connection"] = connection
    elif kind in ("connection_refused", "session_refused"):
        event = _base(record, DATASTORE_ACTIVITY, CONNECT)
        _control(event, DENIED, D_BLOCKED)
        _datastore(event, record, addr)
        event["status_detail"] = reason
    elif kind in ACCOUNT_ACTIVITY:
        activity = ACCOUNT_ACTIVITY[kind]
        event = _base(record, ACCOUNT_CHANGE, activity, kind if activity == OTHER else None)
        event["user"] = {"name": user} if user else None  # the service account
        by = detail.get("by") if isinstance(detail, dict) else None
        event["actor"] = {"user": {"name": by}} if by else None
        event["src_endpoint"] = endpoint(addr)
    elif kind == "config_loaded":
        event = _base(record, APPLICATION_LIFECYCLE, 3)  # written once at every gateway start, and only then
        event["app"] = {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME}
    elif connection and (user or record.get("session_id")):
        event = _base(record, DATASTORE_ACTIVITY, OTHER, kind)
        _datastore(event, record, addr)
    else:  # about no database: OCSF's generic event, rather than a Datastore Activity without a datastore
        event = _base(record, BASE_EVENT, OTHER, kind)
        unmapped.update(user=user, connection=connection)
    _status(event, status_id, severity_id)
    event["unmapped"] = unmapped
    return event


def to_ocsf(record: dict[str, Any], session_addr: str | None = None) -> dict[str, Any]:
    """One export record as one OCSF 1.3.0 event (a JSON object without nulls).

    ``session_addr``: the client address of the record's session, for records that do not carry one themselves
    (statements, session ends); ``events`` passes it from the session's start.
    """
    addr = record.get("client_addr") or session_addr
    kind = record["type"]
    if kind == "statement":
        event = _statement(record, addr)
    elif kind == "session_start":
        event = _session_start(record, addr)
    elif kind == "session_end":
        event = _session_end(record, addr)
    else:
        event = _event(record, addr)
    if addr and endpoint(addr) is None:  # not a network address (cli, local, http): kept as recorded
        event.setdefault("unmapped", {})["client_addr"] = addr
    cleaned: dict[str, Any] = _clean(event)
    return cleaned


def events(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``rows`` (in time order, as ``export.records`` yields them) as OCSF events, one for one.

    Statements and session ends carry no client address; the session's start does, and comes first in the
    stream, so it is remembered until the session's end (only open sessions are held, never the stream). Events
    keep their own address even when they name a session: a reviewer's vote on a held statement came from the
    reviewer, not from the session's client.
    """
    addrs: dict[str, str] = {}
    for rec in rows:
        session, kind = rec.get("session_id"), rec["type"]
        if kind == "session_start" and session and rec.get("client_addr"):
            addrs[session] = rec["client_addr"]
        addr = addrs.get(session) if session and kind in ("statement", "session_end") else None
        if kind == "session_end" and session:
            addrs.pop(session, None)
        yield to_ocsf(rec, addr)
