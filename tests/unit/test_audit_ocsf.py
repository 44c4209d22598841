"""The OCSF mapping of export records (wardgate/audit/ocsf.py), checked against the pinned schema, OCSF 1.3.0.

The schema facts below (each class's required attributes and constraints, the attributes each class and object
has, the enums) are copied by hand from the ocsf-schema repository at v1.3.0 (events/application/
datastore_activity.json, events/iam/authentication.json, account_change.json, events/application/
application_lifecycle.json, events/base_event.json with includes/classification.json and occurrence.json,
profiles/security_control.json, the objects and dictionary.json), so that an attribute that does not exist in
that version, or a required one that is missing, fails here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from wardgate.audit import export, ocsf

# --- the pinned schema (OCSF 1.3.0), as much of it as the mapping uses ---------------------------------------

BASE_REQUIRED = {"activity_id", "category_uid", "class_uid", "type_uid", "time", "severity_id", "metadata"}
BASE_ATTRS = BASE_REQUIRED | {
    "activity_name", "category_name", "class_name", "type_name", "count", "duration", "end_time", "start_time",
    "timezone_offset", "enrichments", "message", "observables", "raw_data", "severity", "status", "status_code",
    "status_detail", "status_id", "unmapped",
}
SECURITY_CONTROL = {"action", "action_id", "disposition", "disposition_id"}
CLASS_REQUIRED = {6005: {"actor", "src_endpoint"}, 3002: {"user"}, 3001: {"user"}, 6002: {"app"}, 0: set()}
CLASS_AT_LEAST_ONE = {6005: ("database", "databucket", "table"), 3002: ("service", "dst_endpoint")}
CLASS_ATTRS = {
    6005: {"actor", "database", "databucket", "table", "type", "type_id", "query_info", "dst_endpoint",
           "http_request", "src_endpoint"} | SECURITY_CONTROL,
    3002: {"http_request", "src_endpoint", "actor", "auth_factors", "auth_protocol", "auth_protocol_id",
           "certificate", "dst_endpoint", "is_cleartext", "is_mfa", "is_new_logon", "is_remote", "logon_process",
           "logon_type", "logon_type_id", "service", "session", "user"},
    3001: {"http_request", "src_endpoint", "actor", "policy", "user", "user_result"},
    6002: {"app"},
    0: set(),
}
CLASS_CATEGORY = {6005: 6, 6002: 6, 3002: 3, 3001: 3, 0: 0}
ACTIVITY_ENUM = {
    6005: set(range(11)) | {99}, 3002: set(range(7)) | {99}, 3001: set(range(12)) | {99},
    6002: set(range(9)) | {99}, 0: {0, 99},
}
ENDPOINT_ATTRS = {"agent_list", "domain", "hostname", "hw_info", "instance_uid", "interface_name", "interface_uid",
                  "ip", "location", "mac", "name", "os", "owner", "subnet_uid", "type", "type_id", "uid",
                  "vlan_uid", "vpc_uid", "zone", "autonomous_system", "intermediate_ips", "proxy_endpoint", "port",
                  "svc_name"}
OBJECTS: dict[str, tuple[set[str], set[str], tuple[str, ...]]] = {  # name -> (attributes, required, at least one)
    "metadata": ({"correlation_uid", "event_code", "extension", "extensions", "labels", "log_level", "log_name",
                  "log_provider", "log_version", "logged_time", "modified_time", "loggers", "original_time",
                  "processed_time", "product", "profiles", "sequence", "tenant_uid", "uid", "version"},
                 {"product", "version"}, ()),
    "product": ({"feature", "cpe_name", "lang", "name", "path", "uid", "url_string", "vendor_name", "version"},
                {"vendor_name"}, ("name", "uid")),
    "actor": ({"app_name", "app_uid", "authorizations", "idp", "invoked_by", "process", "session", "user"}, set(),
              ("process", "user", "invoked_by", "session", "app_name", "app_uid")),
    "user": ({"account", "credential_uid", "domain", "email_addr", "full_name", "groups", "ldap_person", "name",
              "org", "risk_level", "risk_level_id", "risk_score", "type", "type_id", "uid", "uid_alt"}, set(),
             ("account", "name", "uid")),
    "group": ({"desc", "domain", "name", "privileges", "type", "uid"}, set(), ("name", "uid")),
    "session": ({"count", "created_time", "credential_uid", "expiration_time", "expiration_reason", "is_remote",
                 "is_mfa", "is_vpn", "issuer", "terminal", "uid", "uid_alt", "uuid"}, set(), ()),
    "idp": ({"name", "uid"}, set(), ("name", "uid")),
    "network_endpoint": (ENDPOINT_ATTRS, set(), ("ip", "uid", "name", "hostname", "svc_name", "instance_uid",
                                                 "interface_uid", "interface_name")),
    "database": ({"created_time", "modified_time", "desc", "size", "groups", "type", "type_id", "name", "uid"},
                 {"type_id"}, ("name", "uid")),
    "query_info": ({"query_time", "query_string", "data", "bytes", "name", "uid"}, {"query_string"},
                   ("name", "uid")),
    "service": ({"labels", "name", "uid", "version"}, set(), ("name", "uid")),
}
ATTRIBUTE_OBJECT = {"metadata": "metadata", "product": "product", "app": "product", "actor": "actor",
                    "user": "user", "groups": "group", "session": "session", "idp": "idp",
                    "src_endpoint": "network_endpoint", "database": "database", "query_info": "query_info",
                    "service": "service"}
SEVERITY_ENUM = {0, 1, 2, 3, 4, 5, 6, 99}
STATUS_ENUM = {0, 1, 2, 99}
ACTION_ENUM = {1, 2}
DISPOSITION_ENUM = set(range(28)) | {99}


def schema_problems(event: dict[str, Any], *, allow_missing: frozenset[str] = frozenset()) -> list[str]:
    """What in ``event`` the pinned schema does not allow, or misses (``allow_missing``: documented gaps)."""
    problems: list[str] = []
    cls = event.get("class_uid")
    if cls not in CLASS_ATTRS:
        return [f"class_uid {cls} is not one the mapping uses"]
    for name in sorted((BASE_REQUIRED | CLASS_REQUIRED[cls]) - set(event) - allow_missing):
        problems.append(f"missing required {name}")
    if cls in CLASS_AT_LEAST_ONE and not set(CLASS_AT_LEAST_ONE[cls]) & set(event):
        problems.append(f"none of {CLASS_AT_LEAST_ONE[cls]}")
    for name in sorted(set(event) - BASE_ATTRS - CLASS_ATTRS[cls]):
        problems.append(f"{name} is not an attribute of class {cls} in OCSF 1.3.0")
    if set(event) & SECURITY_CONTROL and "security_control" not in event["metadata"].get("profiles", []):
        problems.append("security control attributes without the profile named in metadata.profiles")

    def check(path: str, obj_name: str, value: Any) -> None:
        if isinstance(value, list):
            for i, item in enumerate(value):
                check(f"{path}[{i}]", obj_name, item)
            return
        attrs, required, one_of = OBJECTS[obj_name]
        problems.extend(f"{path}.{a} is not an attribute of {obj_name}" for a in sorted(set(value) - attrs))
        problems.extend(f"{path} misses required {a}" for a in sorted(required - set(value)))
        if one_of and not set(one_of) & set(value):
            problems.append(f"{path} has none of {one_of}")
        for key, sub in value.items():
            if key in ATTRIBUTE_OBJECT and isinstance(sub, dict | list):
                check(f"{path}.{key}", ATTRIBUTE_OBJECT[key], sub)

    for key, value in event.items():
        if key in ATTRIBUTE_OBJECT:
            check(key, ATTRIBUTE_OBJECT[key], value)
    return problems


def nulls(value: Any, path: str = "") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return []


def check_event(event: dict[str, Any], *, allow_missing: frozenset[str] = frozenset()) -> None:
    assert schema_problems(event, allow_missing=allow_missing) == []
    assert nulls(event) == []
    cls, activity = event["class_uid"], event["activity_id"]
    assert event["type_uid"] == cls * 100 + activity
    assert event["category_uid"] == CLASS_CATEGORY[cls]
    assert activity in ACTIVITY_ENUM[cls]
    assert event["severity_id"] in SEVERITY_ENUM
    assert event.get("status_id", 0) in STATUS_ENUM
    assert event.get("action_id", 1) in ACTION_ENUM
    assert event.get("disposition_id", 0) in DISPOSITION_ENUM
    assert event["metadata"]["version"] == ocsf.OCSF_VERSION == "1.3.0"
    assert event["metadata"]["product"]["name"] == "wardgate"
    assert isinstance(event["time"], int)
    json.dumps(event)  # plain JSON all the way down


# --- export records, as export.records yields them --------------------------------------------------------------

T0 = "2026-12-01T10:00:00.123456Z"
T0_MS = int(datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC).timestamp()) * 1000 + 123
SESSION = "0b6d5a0e-4d6f-4a0e-9d6b-2f0f6f7c1a11"


def session_start(**kw: Any) -> dict[str, Any]:
    return {"time": T0, "type": "session_start", "user": "ann", "connection": "shop", "session_id": SESSION,
            "groups": '["dba", "eng"]', "auth_method": "oidc", "issuer": "https://idp.example.com",
            "client_addr": "10.1.2.3:51234", "application_name": "psql", **kw}


def statement(**kw: Any) -> dict[str, Any]:
    return {"time": "2026-12-01T10:00:01.000000Z", "type": "statement", "user": "ann", "connection": "shop",
            "session_id": SESSION, "groups": '["dba", "eng"]', "issuer": "https://idp.example.com", "seq": 3,
            "kind": "select", "statement": "SELECT email FROM customers WHERE id = $1", "status": "ok",
            "decision": "allow", "rule": "default", "reason": None, "sqlstate": None, "error_message": None,
            "rows": 1, "duration_ms": 1.736, "masked": '[{"column": "email", "detector": "email", '
                                                      '"rule": "pii", "values": 1}]', **kw}


def session_end(**kw: Any) -> dict[str, Any]:
    return {"time": "2026-12-01T10:05:00.000000Z", "type": "session_end", "user": "ann", "connection": "shop",
            "session_id": SESSION, "end_reason": "client closed",
            "detail": '{"bytes_from_client": 120, "bytes_to_client": 4096}', **kw}


def event(kind: str, detail: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"time": "2026-12-01T10:06:00.000000Z", "type": kind, "user": "ann", "connection": "shop",
            "session_id": None, "client_addr": "10.1.2.3:51300", "detail": json.dumps(detail), **kw}


# --- tests -------------------------------------------------------------------------------------------------------


def test_a_statement_is_a_datastore_query_with_its_redacted_text_and_the_policy_outcome() -> None:
    e = ocsf.to_ocsf(statement(), "10.1.2.3:51234")
    check_event(e)
    assert (e["class_uid"], e["activity_id"], e["type_uid"]) == (6005, 4, 600504)
    assert (e["activity_name"], e["type_name"]) == ("Query", "Datastore Activity: Query")
    assert e["query_info"] == {"query_string": "SELECT email FROM customers WHERE id = $1", "uid": f"{SESSION}:3"}
    assert e["actor"] == {"user": {"name": "ann", "groups": [{"name": "dba"}, {"name": "eng"}]},
                          "session": {"uid": SESSION}, "idp": {"uid": "https://idp.example.com"}}
    assert e["src_endpoint"] == {"ip": "10.1.2.3", "port": 51234}
    assert e["database"] == {"name": "shop", "type_id": 1, "type": "Relational"}
    assert (e["status_id"], e["severity_id"], e["action_id"], e["disposition_id"]) == (1, 1, 1, 1)
    assert e["duration"] == 2 and e["metadata"]["correlation_uid"] == SESSION
    assert e["metadata"]["event_code"] == "statement" and e["metadata"]["original_time"] == statement()["time"]
    assert e["unmapped"] == {"kind": "select", "status": "ok", "decision": "allow", "rule": "default", "rows": 1,
                             "duration_ms": 1.736, "seq": 3,
                             "masked": [{"column": "email", "detector": "email", "rule": "pii", "values": 1}]}


@pytest.mark.parametrize(("kind", "activity", "name"), [
    ("select", 4, "Query"), ("fetch", 1, "Read"), ("insert", 5, "Write"), ("merge", 5, "Write"),
    ("update", 2, "Update"), ("alter", 2, "Update"), ("create", 6, "Create"), ("delete", 7, "Delete"),
    ("truncate", 7, "Delete"), ("drop", 7, "Delete"),
    ("copy", 99, "copy"), ("call", 99, "call"), ("grant", 99, "grant"), ("transaction", 99, "transaction"),
    ("set", 99, "set"), ("unparsed", 99, "unparsed"), ("function_call", 99, "function_call"),
])
def test_statement_kinds_map_to_datastore_activities(kind: str, activity: int, name: str) -> None:
    e = ocsf.to_ocsf(statement(kind=kind), "10.1.2.3:1")
    check_event(e)
    assert (e["activity_id"], e["activity_name"], e["type_uid"]) == (activity, name, 600500 + activity)
    if activity == 99:
        assert e["type_name"] == "Datastore Activity: Other"  # the type is the enum's; the name says which


@pytest.mark.parametrize(("decision", "status", "outcome"), [
    ("allow", "ok", (1, 1, 1, 1)),
    ("allow", "error", (2, 1, 1, 1)),  # the database refused it: a failure, not a denial
    ("deny", "denied", (2, 2, 2, 2)),
    ("review", "ok", (1, 1, 1, 8)),  # approved and run
    ("review", "denied", (2, 2, 2, 2)),  # a reviewer said no, or nobody said yes in time
    ("review", "held", (2, 1, 2, 14)),  # left pending, not run
    ("review", "lost", (2, 1, 2, 14)),
    ("allow", "skipped", (2, 1, 1, 1)),  # allowed, but its message was refused elsewhere
])
def test_the_decision_and_outcome_become_status_action_and_disposition(
        decision: str, status: str, outcome: tuple[int, int, int, int]) -> None:
    failed = status != "ok"
    e = ocsf.to_ocsf(statement(decision=decision, status=status, sqlstate="42501" if failed else None,
                               error_message="wardgate: refused" if failed else None,
                               reason="writes need approval" if decision != "allow" else None), "10.1.2.3:1")
    check_event(e)
    assert (e["status_id"], e["severity_id"], e["action_id"], e["disposition_id"]) == outcome
    assert e["status"] == ("Success" if outcome[0] == 1 else "Failure")
    if failed:
        assert (e["status_code"], e["status_detail"]) == ("42501", "wardgate: refused")
    assert e["unmapped"]["decision"] == decision and e["unmapped"]["status"] == status


def test_a_statement_without_text_has_no_query_info_and_nothing_is_null() -> None:
    e = ocsf.to_ocsf(statement(statement=None, kind="unparsed", duration_ms=None, rows=None, masked=None),
                     "10.1.2.3:1")
    check_event(e)
    assert "query_info" not in e and "duration" not in e
    assert set(e["unmapped"]) == {"kind", "status", "decision", "rule", "seq"}


def test_a_session_start_is_a_connect() -> None:
    e = ocsf.to_ocsf(session_start())
    check_event(e)
    assert (e["class_uid"], e["activity_id"], e["type_uid"], e["activity_name"]) == (6005, 3, 600503, "Connect")
    assert e["time"] == T0_MS and e["actor"]["session"] == {"uid": SESSION, "created_time": T0_MS}
    assert e["actor"]["app_name"] == "psql" and e["actor"]["user"]["groups"] == [{"name": "dba"}, {"name": "eng"}]
    assert (e["status_id"], e["action_id"], e["disposition_id"]) == (1, 1, 1)
    assert e["unmapped"] == {"auth_method": "oidc"}


def test_a_session_end_is_a_datastore_activity_other_named_disconnect() -> None:
    e = ocsf.to_ocsf(session_end(), "10.1.2.3:51234")
    check_event(e)
    assert (e["class_uid"], e["activity_id"], e["type_uid"]) == (6005, 99, 600599)
    assert e["activity_name"] == "Disconnect" and "status_id" not in e and "action_id" not in e
    assert e["unmapped"] == {"end_reason": "client closed", "bytes_from_client": 120, "bytes_to_client": 4096}


def test_a_failed_authentication_is_an_authentication_logon_failure() -> None:
    e = ocsf.to_ocsf(event("auth_failed", {"reason": "token expired", "issuer": "https://idp.example.com"}))
    check_event(e)
    assert (e["class_uid"], e["category_uid"], e["activity_id"], e["type_uid"]) == (3002, 3, 1, 300201)
    assert (e["status_id"], e["status"], e["status_detail"], e["severity_id"]) == (2, "Failure", "token expired", 2)
    assert e["user"] == {"name": "ann"} and e["service"] == {"name": "shop"}
    assert e["src_endpoint"] == {"ip": "10.1.2.3", "port": 51300}
    # a refused token that names nobody, at the HTTP API: the user OCSF requires is not known, and not made up
    e = ocsf.to_ocsf(event("auth_failed", {"reason": "bad signature", "via": "http api"}, user=None,
                           connection=None))
    check_event(e, allow_missing=frozenset({"user"}))
    assert "user" not in e and e["service"] == {"name": "wardgate"}


@pytest.mark.parametrize("kind", ["connection_refused", "session_refused"])
def test_a_refused_connection_is_a_denied_connect(kind: str) -> None:
    e = ocsf.to_ocsf(event(kind, {"reason": "not in an allowed group", "groups": ["eng"]}))
    check_event(e)
    assert (e["class_uid"], e["activity_id"], e["status_id"], e["action_id"], e["disposition_id"]) == \
        (6005, 3, 2, 2, 2)
    assert e["status_detail"] == "not in an allowed group" and e["unmapped"]["detail"]["groups"] == ["eng"]


@pytest.mark.parametrize("kind", ["review_requested", "review_vote", "review_approved", "review_denied",
                                  "review_executed", "review_expired", "access_requested", "access_granted",
                                  "access_used", "access_ended", "access_revoked", "masking_exempt"])
def test_other_events_on_a_connection_are_datastore_activity_other_with_their_kind(kind: str) -> None:
    e = ocsf.to_ocsf(event(kind, {"review": "r-1", "by": "sre-1"}, session_id=SESSION))
    check_event(e)
    assert (e["class_uid"], e["activity_id"], e["type_uid"], e["activity_name"]) == (6005, 99, 600599, kind)
    assert e["status_id"] == 1 and "action_id" not in e
    assert e["actor"]["session"] == {"uid": SESSION} and e["unmapped"]["detail"] == {"review": "r-1", "by": "sre-1"}


def test_a_refused_vote_is_a_failure() -> None:
    e = ocsf.to_ocsf(event("review_vote_refused", {"vote": "approve", "why": "own request"}))
    check_event(e)
    assert (e["activity_name"], e["status_id"], e["severity_id"]) == ("review_vote_refused", 2, 2)


def test_events_from_the_command_line_keep_their_source_as_recorded() -> None:
    """`cli` is not a network address: OCSF's required src_endpoint is left out, the record's word kept."""
    e = ocsf.to_ocsf(event("access_revoked", {"grant": "g-1", "by": "sre-1"}, client_addr="cli"))
    check_event(e, allow_missing=frozenset({"src_endpoint"}))
    assert "src_endpoint" not in e and e["unmapped"]["client_addr"] == "cli"


@pytest.mark.parametrize(("kind", "activity", "name"), [
    ("service_account_created", 1, "Create"), ("service_account_disabled", 5, "Disable"),
    ("service_account_changed", 99, "service_account_changed"),
])
def test_service_account_events_are_account_changes(kind: str, activity: int, name: str) -> None:
    e = ocsf.to_ocsf(event(kind, {"groups": ["eng"], "by": "root"}, user="agent-7", connection=None,
                           client_addr="cli"))
    check_event(e)
    assert (e["class_uid"], e["activity_id"], e["activity_name"], e["type_uid"]) == \
        (3001, activity, name, 300100 + activity)
    assert e["user"] == {"name": "agent-7"} and e["actor"] == {"user": {"name": "root"}}


def test_a_gateway_start_is_an_application_lifecycle_start() -> None:
    e = ocsf.to_ocsf(event("config_loaded", {"sha256": "ab" * 32, "config": {"masking": {"hash_key": "env:K"}}},
                           user=None, connection=None, client_addr=None))
    check_event(e)
    assert (e["class_uid"], e["activity_id"], e["type_uid"]) == (6002, 3, 600203)
    assert e["app"] == {"name": "wardgate", "vendor_name": "wardgate"}
    assert e["unmapped"]["detail"]["config"]["masking"]["hash_key"] == "env:K"  # the reference, as recorded


@pytest.mark.parametrize(("kind", "status_id"), [("audit_pruned", 1), ("notification_failed", 2)])
def test_events_about_no_database_are_base_events(kind: str, status_id: int) -> None:
    e = ocsf.to_ocsf(event(kind, {"before": T0}, user="root" if kind == "audit_pruned" else None, connection=None,
                           client_addr="cli" if kind == "audit_pruned" else None))
    check_event(e)
    assert (e["class_uid"], e["category_uid"], e["activity_id"], e["type_uid"]) == (0, 0, 99, 99)
    assert e["activity_name"] == kind and e["status_id"] == status_id


def test_times_are_epoch_milliseconds() -> None:
    assert ocsf.epoch_ms(T0) == T0_MS
    assert ocsf.epoch_ms("1970-01-01T00:00:00.000999Z") == 0  # whole milliseconds, never rounded up
    assert ocsf.epoch_ms("2026-12-01T11:00:00.123456+01:00") == T0_MS


@pytest.mark.parametrize(("addr", "expected"), [
    ("10.1.2.3:5432", {"ip": "10.1.2.3", "port": 5432}),
    ("::1:40000", {"ip": "::1", "port": 40000}),
    ("[2001:db8::7]:443", {"ip": "2001:db8::7", "port": 443}),
    ("10.1.2.3", {"ip": "10.1.2.3"}),
    ("cli", None), ("local", None), ("http", None), ("", None), (None, None),
])
def test_client_addresses(addr: str | None, expected: dict[str, Any] | None) -> None:
    assert ocsf.endpoint(addr) == expected


def test_the_stream_gives_statements_their_session_address_and_events_their_own() -> None:
    rows = [session_start(), statement(), event("review_vote", {"vote": "approve"}, session_id=SESSION,
                                                 client_addr="cli"), session_end(), statement(seq=9)]
    out = list(ocsf.events(rows))
    assert [e["src_endpoint"]["ip"] for e in out[:2]] == ["10.1.2.3", "10.1.2.3"]
    assert "src_endpoint" not in out[2]  # the reviewer's vote came from the command line, not the session's client
    assert out[3]["src_endpoint"]["ip"] == "10.1.2.3"
    assert "src_endpoint" not in out[4]  # after its end the session is forgotten: nothing is held for long


def test_write_ocsf_streams_one_json_object_per_record() -> None:
    pulled = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for rec in (session_start(), statement(), session_end()):
            pulled += 1
            yield rec

    class Out(io.StringIO):
        seen: list[int] = []

        def write(self, s: str) -> int:
            if s == "\n":
                self.seen.append(pulled)
            return super().write(s)

    out = Out()
    assert export.write(out, "ocsf", rows()) == 3
    assert out.seen == [1, 2, 3]  # each event is written before the next record is read
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["type_uid"] for e in events] == [600503, 600504, 600599]


def test_the_schema_check_itself_finds_what_1_3_0_does_not_have() -> None:
    e = ocsf.to_ocsf(statement(), "10.1.2.3:1")
    assert schema_problems({**e, "session": {"uid": SESSION}}) == [
        "session is not an attribute of class 6005 in OCSF 1.3.0"]  # 6005 has the session under actor only
    bad = {**e, "actor": {"user": {"name": "ann", "display_name": "Ann"}}, "database": {"name": "shop"}}
    del bad["src_endpoint"]
    assert schema_problems(bad) == ["missing required src_endpoint", "actor.user.display_name is not an attribute "
                                    "of user", "database misses required type_id"]
