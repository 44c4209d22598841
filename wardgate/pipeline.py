"""The per-session and per-statement flow shared by every front-end.

Front-ends turn wire traffic into calls here and turn the answers back into wire messages. This is the only
module that composes identity, policy, audit and the store; it knows nothing about bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from .audit.recorder import AuditUnavailable, Recorder
from .audit.samples import Kept
from .config import Config, PostgresConnection, format_duration
from .identity.model import Authenticator, AuthFailure, Identity
from .identity.verify import claimed_issuer, verify_any
from .masking.detectors import custom
from .masking.maskers import Style
from .masking.policy import ColumnPattern, MaskingPolicy, MaskRule, SessionMasking, expand_detectors
from .masking.results import Counts
from .policy.analyze import GATEWAY_SETTINGS, REASON_SETTING, WAIT_SETTING
from .policy.decide import UNKNOWN_STATEMENT, decide_message, effective, refused, single_statement
from .policy.rules import UNPARSED_RULE, UNREADABLE_RULE, Decision, Policy, RuleSet
from .policy.sql import StatementInfo, classify, gateway_settings
from .policy.startup import UnsupportedOption, as_statement, startup_settings
from .reviews.model import ReviewSpec
from .reviews.notify import DECIDED, REQUESTED, messages
from .store import StoreError
from .store.db import Write
from .store.grants import Grant, GrantStore
from .store.notifications import Delivery, Outbox
from .store.reviews import Review, ReviewStore

log = logging.getLogger("wardgate.pipeline")
# The clocks every statement reads, as Final names: compiled, each is a C static, where ``time.x`` is an attribute
# lookup on the module (~250 instructions) and a plain global a lookup by name (~130).
perf_counter: Final = time.perf_counter
wall_clock: Final = time.time


_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def safe_error_message(sqlstate: str | None, message: str | None) -> str | None:
    """A server error message fit for the audit store.

    Data exceptions (class 22) quote the offending input value (``invalid input syntax for type integer:
    "4111..."``), which may be exactly the sensitive value; those quotes are redacted. Details are never kept.
    """
    if message is None:
        return None
    if sqlstate and sqlstate.startswith("22"):
        message = _QUOTED.sub('"…"', message)
    return message[:2000]


_FUNCTION_CALL = StatementInfo("function_call", None, writes=True)  # by oid: what it does is not known here


def _function_call_info(oid: int) -> StatementInfo:
    return StatementInfo("function_call", f"-- function call: oid {oid}", writes=True)


def _refusal(rec: StatementRecord) -> StatementRefused:
    """The client's error for a statement the policy refused: the rule's name and reason, SQLSTATE 42501."""
    d = rec.decision
    what = f"{rec.info.kind} statement"
    if d.rule == UNPARSED_RULE and rec.info.kind == "unparsed":
        # A syntax error in PostgreSQL's own grammar: clients point at it as they would at the server's.
        return StatementRefused("42601", f'wardgate: statement refused by rule "{d.rule}": {d.reason}')
    if d.action == "review":
        return StatementRefused(
            "42501",
            f'wardgate: rule "{d.rule}" requires approval for this {what}, and it cannot wait for a review here '
            f"(a startup parameter, a function call, or a statement the gateway never saw), so it is refused",
            f"reason: {d.reason}" if d.reason else None,
            "run it as a statement after login (SQL text), where it can be held for review",
        )
    return StatementRefused(
        "42501",
        f'wardgate: {what} denied by rule "{d.rule}": {d.reason}',
        None,
        "the gateway's policy refused it before it reached the database; nothing of the message ran",
    )


class SessionRefused(Exception):
    """A session cannot open; ``sqlstate`` and ``message`` go to the client as they are."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


class ReviewRequired(Exception):
    """A rule holds the statement(s) for review: nothing runs until people approve. ``records`` are the message's
    statements (seq already taken, nothing recorded yet), ``index`` the one whose rule asked for review."""

    def __init__(self, records: list[StatementRecord], index: int, spec: ReviewSpec, text: str) -> None:
        super().__init__(records[index].decision.rule)
        self.records = records
        self.index = index
        self.spec = spec
        self.text = text

    @property
    def decision(self) -> Decision:
        return self.records[self.index].decision


class StatementRefused(Exception):
    """A statement must not run; the client gets ``sqlstate``, ``message`` and, when given, detail and hint."""

    def __init__(self, sqlstate: str, message: str, detail: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.detail = detail
        self.hint = hint


@dataclass(frozen=True, slots=True)
class ClientInfo:
    address: str
    application_name: str
    protocol: str


@dataclass(slots=True)
class Session:
    id: str
    identity: Identity
    connection_name: str
    connection: PostgresConnection
    client: ClientInfo
    started_at: float  # epoch seconds
    rules: RuleSet
    read_only: bool = False  # the upstream session runs with default_transaction_read_only = on
    seq: int = 0
    ended: bool = False
    # Why statements cannot be read as the server reads them right now (setting -> reason); see parameter_changed.
    unreadable: dict[str, str] = field(default_factory=dict)
    masking: SessionMasking | None = None  # what its results go through; None: nothing is masked
    review_reason: str | None = None  # SET wardgate.reason (or the startup setting): why, for reviewers
    review_wait: bool = True  # SET wardgate.review_wait = off: a held statement fails at once, its request stays
    grant: Grant | None = None  # the just-in-time access grant the session runs under (its groups are added)


@dataclass(slots=True, init=False, eq=False)
class StatementRecord:
    """One statement in flight, from the moment the pipeline sees it to its outcome.

    One is made per statement, so ``__init__`` is explicit: compiled, a direct call, where a dataclass's
    generated one stays interpreted."""

    session: Session
    seq: int
    protocol: str
    info: StatementInfo
    param_count: int
    started_at: float  # epoch seconds
    decision: Decision
    t0: float
    rows_seen: int
    masked: Counts | None  # (rule, column, detector or "column") -> values masked in its results
    portal: str | None  # the extended-protocol portal it executes
    kept: Kept | None  # the first rows of its result, as the client received them (session replay)

    def __init__(self, session: Session, seq: int, protocol: str, info: StatementInfo, param_count: int,
                 started_at: float, decision: Decision) -> None:
        self.session = session
        self.seq = seq
        self.protocol = protocol
        self.info = info
        self.param_count = param_count
        self.started_at = started_at
        self.decision = decision
        self.t0 = perf_counter()
        self.rows_seen = 0
        self.masked = None
        self.portal = None
        self.kept = None


class Pipeline:
    def __init__(
        self,
        config: Config,
        recorder: Recorder,
        authenticators: list[Authenticator],
        gateway_id: str,
    ) -> None:
        self.config = config
        self.recorder = recorder
        self.authenticators = authenticators
        self.gateway_id = gateway_id
        self.policy = Policy(config)
        self.masking = masking_policy(config)
        self.reviews = ReviewStore(recorder.store)
        self.outbox = Outbox(recorder.store)
        self.grants = GrantStore(recorder.store)
        self._review_specs: dict[str, ReviewSpec | None] = {}

    # --- sessions -------------------------------------------------------------------------------------------

    async def open_session(
        self,
        *,
        user: str,
        credential: str,
        connection_name: str,
        client: ClientInfo,
    ) -> Session:
        """Authenticate and authorize; record the session start. Raises ``SessionRefused``."""
        loop = asyncio.get_running_loop()
        identity = await loop.run_in_executor(None, self._authenticate, user, credential, connection_name, client)
        conn = self.config.connections.get(connection_name)
        if conn is None:
            self._event("connection_refused", user, connection_name, client, {"reason": "unknown connection"})
            raise SessionRefused("3D000", f'connection "{connection_name}" does not exist on this gateway')
        grant = None
        if conn.access is not None:
            identity, grant = await self._grant(identity, connection_name, conn.access.max_duration, client)
        if conn.allow_groups and not set(conn.allow_groups) & set(identity.groups) and grant is None:
            self._event(
                "connection_refused",
                user,
                connection_name,
                client,
                {"reason": "not in an allowed group", "groups": list(identity.groups)},
            )
            how = f"; or request access: wardgate access request {connection_name}" if conn.access else ""
            raise SessionRefused(
                "28000",
                f'user "{user}" may not use connection "{connection_name}": '
                f"it requires membership in one of: {', '.join(conn.allow_groups)}{how}",
            )
        rules = self.policy.scope(connection_name, identity.groups)
        session = Session(str(uuid.uuid4()), identity, connection_name, conn, client, time.time(), rules,
                          self.policy.read_only(connection_name, identity.groups))
        session.grant = grant
        session.masking, exempt = self.masking.for_session(connection_name, identity.groups)
        masking = None
        if session.masking is not None or exempt:
            applied = [r.name for r in session.masking.rules] if session.masking else []
            masking = json.dumps({"rules": applied, "exempt": list(exempt)})
        try:
            self.recorder.record(
                Write(
                    "sessions",
                    {
                        "id": session.id,
                        "user": identity.subject,
                        "groups": json.dumps(list(identity.groups)),
                        "auth_method": identity.method,
                        "token_id": identity.token_id,
                        "connection": connection_name,
                        "protocol": client.protocol,
                        "client_addr": client.address,
                        "application_name": client.application_name,
                        "gateway": self.gateway_id,
                        "started_at": session.started_at,
                        "ended_at": None,
                        "end_reason": None,
                        "bytes_from_client": 0,
                        "bytes_to_client": 0,
                        "masking": masking,
                        "issuer": identity.issuer,
                        "idp_subject": identity.idp_subject,
                    },
                )
            )
            self.recorder.commit()
        except AuditUnavailable as exc:
            raise SessionRefused("08004", f"wardgate cannot record this session, so it is refused: {exc}") from None
        self._check_audit()
        if exempt:
            self._event("masking_exempt", identity.subject, connection_name, client,
                        {"rules": list(exempt), "groups": list(identity.groups)}, session.id)
        if grant is not None:
            self._event("access_used", identity.subject, connection_name, client,
                        {"grant": grant.id, "groups": list(grant.groups),
                         "expires_at": grant.expires_at.isoformat()}, session.id)
        return session

    async def _grant(self, identity: Identity, connection: str, max_duration: float,
                     client: ClientInfo) -> tuple[Identity, Grant | None]:
        """The identity with the groups of its running access grant on this connection (an approved request
        not used yet starts now). A store that cannot be read refuses the session (fail closed)."""
        loop = asyncio.get_running_loop()
        try:
            grant, new = await loop.run_in_executor(None, self.grants.activate, identity.subject, connection,
                                                    max_duration)
        except StoreError as exc:
            log.error("cannot read access grants: %s", exc)
            raise SessionRefused("08004", "wardgate cannot check access grants right now (store unavailable)") \
                from None
        if grant is None:
            return identity, None
        if new:
            self._event("access_granted", identity.subject, connection, client, {
                "grant": grant.id, "review": grant.review_id, "groups": list(grant.groups),
                "duration": grant.duration, "approved_by": list(grant.approved_by),
                "expires_at": grant.expires_at.isoformat()})
        groups = identity.groups + tuple(g for g in grant.groups if g not in identity.groups)
        return replace(identity, groups=groups), grant

    def grant_ended(self, session: Session, why: str) -> None:
        """A session's grant expired or was revoked: recorded before the session is ended."""
        if session.grant is not None:
            self._event("access_ended", session.identity.subject, session.connection_name, session.client,
                        {"grant": session.grant.id, "why": why}, session.id)

    def check_startup(self, session: Session, params: dict[str, str]) -> None:
        """Startup-packet settings are decided like the SET statements they amount to (``role=admin`` is
        ``SET ROLE admin``); one refused refuses the session. Raises ``SessionRefused``."""
        try:
            settings = startup_settings(params)
        except UnsupportedOption as exc:
            self._event("session_refused", session.identity.subject, session.connection_name, session.client,
                        {"reason": str(exc)}, session.id)
            raise SessionRefused("42501", f"wardgate: {exc}") from None
        for name, value in settings:
            if name in GATEWAY_SETTINGS:
                self._gateway_setting(session, name, value)
            info = single_statement(as_statement(name, value))
            decision = session.rules.decide(info)
            if not decision.allowed:
                session.seq += 1
                rec = StatementRecord(session, session.seq, "startup", info, 0, time.time(), decision)
                refusal = self._deny(rec)
                raise SessionRefused(refusal.sqlstate, f"{refusal.message} (startup parameter {name})")

    def _check_audit(self) -> None:
        if not self.recorder.accepting:
            raise SessionRefused(
                "08004", "wardgate's audit store is unavailable; sessions are refused until it recovers"
            )

    def identify(self, credential: str) -> Identity:
        """Who a bearer token (HTTP API) proves to be (blocking). Raises AuthFailure or StoreError."""
        return verify_any(self.authenticators, credential)

    def record_event(self, kind: str, user: str | None, detail: dict[str, Any], client: str | None = None,
                     connection: str | None = None, session_id: str | None = None) -> None:
        """An audit event from outside a session (the HTTP API)."""
        info = ClientInfo(client, "", "http") if client else None
        self._event(kind, user, connection, info, detail, session_id)

    def _authenticate(self, user: str, credential: str, connection_name: str, client: ClientInfo) -> Identity:
        try:
            identity = verify_any(self.authenticators, credential)
            if identity.subject != user:
                raise AuthFailure(f'the token belongs to "{identity.subject}", not to "{user}"')
        except AuthFailure as exc:
            detail = {"reason": exc.reason}
            iss = claimed_issuer(credential)
            if iss is not None:  # claimed, not proven: which IdP (or forger) the token says it came from
                detail["issuer"] = iss
            self._event("auth_failed", user, connection_name, client, detail)
            raise SessionRefused("28P01", f'authentication failed for user "{user}": {exc.reason}') from None
        except StoreError as exc:
            log.error("identity check failed, store unavailable: %s", exc)
            self._event("auth_failed", user, connection_name, client, {"reason": "store unavailable"})
            raise SessionRefused("08004", "wardgate cannot verify tokens right now (store unavailable)") from None
        return identity

    def parameter_changed(self, session: Session, name: str, value: str) -> None:
        """The server reported a setting (ParameterStatus), at login or after a SET.

        ``application_name``: clients such as pgjdbc name themselves with SET after login; the session record
        follows. ``standard_conforming_strings`` and ``client_encoding``: the gateway reads statements with
        PostgreSQL's own lexer as it works with standard strings in UTF-8; with backslash escapes in plain
        strings, or a client encoding whose multi-byte characters can hold a backslash or quote byte, the server
        would read the same bytes differently (a statement could hide inside what the gateway takes for a
        string). Until the setting is back, only the statement that puts it back is let through.
        """
        if name == "application_name":
            self.recorder.record(Write("sessions", {"id": session.id, "application_name": value[:256]}, key="id"))
        elif name == "standard_conforming_strings":
            if value.lower() == "on":
                session.unreadable.pop(name, None)
            else:
                session.unreadable[name] = "standard_conforming_strings is off"
        elif name == "client_encoding":
            if value.upper().replace("-", "").replace("_", "") in ("UTF8", "UNICODE", "SQLASCII"):
                session.unreadable.pop(name, None)
            else:
                session.unreadable[name] = f"the client encoding is {value}"

    def _check_readable(self, session: Session, text: str, infos: tuple[StatementInfo, ...], protocol: str) -> None:
        """Refuse what the gateway cannot read as the server would (see parameter_changed), except the one
        statement that restores the setting: a lone SET/RESET of it (or RESET ALL), with no backslash in it."""
        restoring = (
            len(infos) == 1
            and "\\" not in text
            and infos[0].kind in ("set", "reset")
            and (
                infos[0].redacted == "RESET ALL"
                or infos[0].tags & {"set_standard_conforming_strings", "set_client_encoding"}
                or any(f"reset {n}" in (infos[0].redacted or "").lower() for n in session.unreadable)
            )
        )
        if restoring:
            return
        why = " and ".join(session.unreadable.values())
        decision = Decision("deny", UNREADABLE_RULE, f"{why}: the gateway cannot read statements as the server would")
        session.seq += 1
        info = infos[0] if len(infos) == 1 else StatementInfo("multiple", None)
        rec = StatementRecord(session, session.seq, protocol, info, 0, time.time(), decision)
        exc = StatementRefused(
            "0A000",
            f"wardgate: statements are refused while {why}, because the gateway cannot then read them as the "
            f"server does",
            None,
            "SET standard_conforming_strings = on and SET client_encoding = 'UTF8' (or RESET ALL) to continue",
        )
        self.finish(rec, "denied", sqlstate=exc.sqlstate, message=exc.message)
        raise exc

    def end_session(self, session: Session, reason: str, bytes_from_client: int, bytes_to_client: int) -> None:
        if session.ended:
            return
        session.ended = True
        self.recorder.record(
            Write(
                "sessions",
                {
                    "id": session.id,
                    "ended_at": time.time(),
                    "end_reason": reason,
                    "bytes_from_client": bytes_from_client,
                    "bytes_to_client": bytes_to_client,
                },
                key="id",
            )
        )
        self.commit_or_log(f"the end of session {session.id} ({reason})")

    def commit(self) -> None:
        """Make every staged record durable (journal) before the front-end answers the client."""
        self.recorder.commit()

    def commit_or_log(self, what: str) -> None:
        try:
            self.recorder.commit()
        except AuditUnavailable as exc:
            log.error("%s is queued for the store but not journaled: %s", what, exc)

    def _event(
        self,
        kind: str,
        user: str | None,
        connection: str | None,
        client: ClientInfo | None,
        detail: dict[str, Any],
        session_id: str | None = None,
    ) -> None:
        self.recorder.record(
            Write(
                "events",
                {
                    "at": time.time(),
                    "kind": kind,
                    "subject": user,
                    "connection": connection,
                    "client_addr": client.address if client else None,
                    "session_id": session_id,
                    "detail": json.dumps(detail, sort_keys=True),
                },
            )
        )
        self.commit_or_log(f"audit event {kind}")

    # --- statements -----------------------------------------------------------------------------------------

    def _admit(self) -> None:
        if not self.recorder.accepting:
            # The cause (which may name the store's host) is in the gateway's log, not in the client's error.
            raise StatementRefused(
                "58030",
                "wardgate refuses the statement: its audit store is unavailable, and nothing runs "
                "unrecorded; try again when it recovers",
            )

    def on_query(self, session: Session, text: str, prepared: Mapping[str, str]) -> list[StatementRecord]:
        """A simple-protocol query string: one record per statement in it, decided as a whole (one statement
        refused refuses the message: nothing of it runs). ``prepared``: the session's prepared statements."""
        self._admit()
        started = time.time()
        infos = classify(text)
        if session.unreadable:
            self._check_readable(session, text, infos, "simple")
        decisions = decide_message(session.rules, infos, prepared)
        records = [
            StatementRecord(session, session.seq + i + 1, "simple", info, 0, started, decision)
            for i, (info, (decision, _)) in enumerate(zip(infos, decisions, strict=True))
        ]
        session.seq += len(records)
        bad = refused(decisions)
        if bad < 0 and session.masking is not None:
            bad = self._mask_copy(session, records)
        if bad >= 0:
            spec = self._review_spec(records[bad].decision)
            if spec is not None:
                raise ReviewRequired(records, bad, spec, text)
            for i, r in enumerate(records):
                if i != bad:
                    self.finish(r, "skipped")
            raise self._deny(records[bad])
        if any("set_gateway" in i.tags for i in infos):
            for name, value in gateway_settings(text).items():
                self._gateway_setting(session, name, value)
        return records

    @staticmethod
    def _gateway_setting(session: Session, name: str, value: str) -> None:
        """The session keeps the gateway's own settings (taken when the statement is let through)."""
        if name == REASON_SETTING:
            session.review_reason = value[:2000] or None
        elif name == WAIT_SETTING:
            session.review_wait = value.strip().lower() not in ("off", "false", "0", "no")

    def on_parse(self, session: Session, text: str, prepared: Mapping[str, str]) -> None:
        """An extended-protocol Parse: a statement the policy refuses is refused here, before it exists."""
        self._admit()
        info = single_statement(text)
        if session.unreadable:
            self._check_readable(session, text, (info,), "extended")
        decision = session.rules.decide(effective(info, prepared))
        if not decision.allowed and self._review_spec(decision) is None:
            session.seq += 1
            rec = StatementRecord(session, session.seq, "extended", info, 0, time.time(), decision)
            raise self._deny(rec)
        # A statement for review is parsed (nothing runs at Parse); its Execute waits for the review.

    def on_execute(
        self, session: Session, text: str | None, param_count: int, prepared: Mapping[str, str]
    ) -> StatementRecord:
        """An extended-protocol Execute of ``text`` bound to ``param_count`` values (``text`` None: a statement
        the protocol never showed the gateway)."""
        self._admit()
        info = single_statement(text) if text is not None else UNKNOWN_STATEMENT
        decision = session.rules.decide(effective(info, prepared))
        session.seq += 1
        rec = StatementRecord(session, session.seq, "extended", info, param_count, wall_clock(), decision)
        if session.masking is not None and self._mask_copy(session, [rec]) == 0:
            raise self._deny(rec)
        if not decision.allowed:
            spec = self._review_spec(decision)
            if spec is not None and text is not None:
                raise ReviewRequired([rec], 0, spec, text)
            raise self._deny(rec)
        if "set_gateway" in info.tags and text is not None:
            for name, value in gateway_settings(text).items():
                self._gateway_setting(session, name, value)
        return rec

    # --- reviews --------------------------------------------------------------------------------------------

    def _review_spec(self, decision: Decision) -> ReviewSpec | None:
        """How a review decision is reviewed; None for other decisions (and for a review rule with no review
        settings, which the configuration refuses to load)."""
        if decision.action != "review":
            return None
        try:
            return self._review_specs[decision.rule]
        except KeyError:
            pass
        rc = self.config.review_for(decision.rule)
        spec = None if rc is None else rc.spec()
        self._review_specs[decision.rule] = spec
        return spec

    def request_review(self, session: Session, held: ReviewRequired) -> Review:
        """Create the review request for a held message (blocking: run it in an executor). The request keeps
        the exact text, to run once approved; the audit event has only its redacted form. Raises StoreError
        (the caller refuses the statement: it cannot wait for a review nobody can see)."""
        d = held.decision
        redacted = "; ".join(r.info.redacted or "?" for r in held.records)
        review = self.reviews.create(
            spec=held.spec, requester=session.identity.subject, requester_groups=session.identity.groups,
            connection=session.connection_name, session_id=session.id, gateway=self.gateway_id, rule=d.rule,
            rule_reason=d.reason, statement=held.text, redacted=redacted,
            param_count=sum(r.param_count for r in held.records), reason=session.review_reason)
        self.notify(REQUESTED, review)
        self._event("review_requested", session.identity.subject, session.connection_name, session.client, {
            "review": review.id, "rule": d.rule, "statement": redacted, "approvers": list(held.spec.approvers),
            "min_approvals": held.spec.min_approvals, "all_groups": held.spec.all_groups,
            "expires_at": review.expires_at.isoformat(), "reason": session.review_reason,
            "seq": held.records[0].seq,
        }, session.id)
        return review

    def notify(self, event: str, review: Review) -> None:
        """Queue the notifications of a review event (blocking). A failure is logged, never raised: a
        notification that cannot be queued must not hold up the review itself."""
        try:
            self.outbox.enqueue(event, review.id, messages(self.config.notifications, event, review.public(),
                                                           self.gateway_id))
        except StoreError as exc:
            log.error("cannot queue the %s notifications of review %s: %s", event, review.id, exc)

    def notify_decided(self, review_id: str) -> None:
        """Tell the requester (and the webhooks) how a review ended, when the gateway ended it (expiry)."""
        try:
            review = self.reviews.get(review_id)
        except StoreError as exc:
            log.error("cannot read review %s to notify its outcome: %s", review_id, exc)
            return
        if review is not None:
            self.notify(DECIDED, review)

    def notification_gave_up(self, d: Delivery, error: str) -> None:
        self._event("notification_failed", None, None, None, {
            "notification": d.id, "channel": d.channel, "event": d.event, "review": d.review_id, "error": error})

    def approved_request(self, session: Session, held: ReviewRequired) -> Review | None:
        """An approved request of this requester for exactly this message, not run yet (their client went away
        while it waited, or they asked with ``wardgate exec --no-wait``): it runs now instead of a new request.
        Only for messages without bound parameters, whose text is the whole statement (blocking)."""
        if any(r.param_count for r in held.records):
            return None
        return self.reviews.find_approved(session.identity.subject, session.connection_name, held.text)

    def review_approved(self, session: Session, held: ReviewRequired, review_id: str,
                        approvers: tuple[str, ...]) -> list[StatementRecord]:
        """The held message runs: its records say who approved it. Marks the request executed, so that it never
        runs again (from another session or ``wardgate exec``); False from that means it already ran."""
        if not self.reviews.settle(review_id, "approved", "executed"):
            raise StatementRefused("42501", f"wardgate: review {review_id} was approved, but it has already been "
                                   "used (an approved statement runs once)")
        why = f"review {review_id} approved by {', '.join(approvers)}"
        for r in held.records:
            if r.decision.action == "review":
                r.decision = Decision("review", r.decision.rule, why)
        self._event("review_executed", session.identity.subject, session.connection_name, session.client,
                    {"review": review_id, "approved_by": list(approvers), "seq": held.records[0].seq}, session.id)
        return held.records

    def review_refused(self, session: Session, held: ReviewRequired, review_id: str, status: str,
                       deciders: tuple[str, ...], reason: str | None) -> StatementRefused:
        """The held message does not run (denied, expired, withdrawn): its records say so; the client's error."""
        d = held.decision
        if status == "denied":
            by = ", ".join(deciders) or "a reviewer"
            message = f'wardgate: review {review_id} denied by {by}: rule "{d.rule}" held this statement'
            detail = f"reason: {reason}" if reason else None
            exc = StatementRefused("42501", message, detail, "nothing of the message ran")
            why = f"review {review_id} denied by {by}" + (f": {reason}" if reason else "")
        elif status == "expired":
            within = format_duration(held.spec.expires_after)
            exc = StatementRefused("57014", f'wardgate: review {review_id} (rule "{d.rule}") expired: nobody '
                                   f"decided within {within}, so the statement did not run",
                                   None, f"ask {held.spec.describe()}, then run it again")
            why = f"review {review_id} expired"
        else:
            exc = StatementRefused("57014", "canceling statement due to user request",
                                   f"wardgate: review {review_id} was withdrawn; nothing of the message ran")
            why = f"review {review_id} withdrawn by the requester"
        held.records[held.index].decision = Decision("review", d.rule, why)
        self.refuse_held(session, held, exc)
        if status in ("expired", "withdrawn"):
            self._event(f"review_{status}", session.identity.subject, session.connection_name, session.client,
                        {"review": review_id, "rule": d.rule, "seq": held.records[held.index].seq}, session.id)
        return exc

    def left_pending(self, session: Session, held: ReviewRequired, review: Review) -> StatementRefused:
        """The session does not wait (``wardgate.review_wait = off``): the statement fails now, recorded as
        ``held``, and its request stays pending; once approved, the same statement runs (once)."""
        exc = StatementRefused(
            "57014", f"wardgate: statement held for review {review.id} and not run (wardgate.review_wait is off)",
            f"review: {review.id}", f"ask {held.spec.describe()}; once approved, send the same statement again")
        for i, r in enumerate(held.records):
            if i == held.index:
                r.decision = Decision("review", held.decision.rule, f"review {review.id} requested")
                self.finish(r, "held", sqlstate=exc.sqlstate, message=exc.message)
            else:
                self.finish(r, "skipped")
        return exc

    def refuse_held(self, session: Session, held: ReviewRequired, exc: StatementRefused) -> StatementRefused:
        """A held message that does not run: the statement the review was for is recorded as denied with the
        client's error, the others of its message as skipped."""
        for i, r in enumerate(held.records):
            if i == held.index:
                self.finish(r, "denied", sqlstate=exc.sqlstate, message=exc.message)
            else:
                self.finish(r, "skipped")
        return exc

    def _mask_copy(self, session: Session, records: list[StatementRecord]) -> int:
        """COPY ... TO STDOUT of a table with columns a masking rule marks: refused (COPY describes no columns,
        so they could not be found in its data). Returns the index of the refused record, or -1."""
        assert session.masking is not None
        for i, r in enumerate(records):
            if r.info.kind == "copy" and "copy_to" in r.info.tags:
                rule = session.masking.copy_rule(r.info.reads)
                if rule is not None:
                    r.decision = Decision(
                        "deny", rule.name,
                        "COPY TO sends no column descriptions, so the columns this masking rule marks could not be "
                        "masked in its data; use SELECT (or COPY (SELECT ...) of columns the rule does not mark "
                        "from tables it does not name)",
                    )
                    return i
        return -1

    def record_skipped(self, session: Session, text: str, param_count: int, prepared: Mapping[str, str]) -> None:
        """An Execute the server will skip (an earlier message of its batch was refused): recorded, not run."""
        info = single_statement(text)
        session.seq += 1
        decision = session.rules.decide(effective(info, prepared))
        self.finish(StatementRecord(session, session.seq, "extended", info, param_count, time.time(), decision),
                    "skipped")

    def on_function_call(self, session: Session, function_oid: int, nargs: int) -> StatementRecord:
        self._admit()
        session.seq += 1
        decision = session.rules.decide(_FUNCTION_CALL)
        rec = StatementRecord(session, session.seq, "function", _function_call_info(function_oid), nargs,
                              time.time(), decision)
        if not decision.allowed:
            raise self._deny(rec)
        return rec

    def _deny(self, rec: StatementRecord) -> StatementRefused:
        exc = _refusal(rec)
        self.finish(rec, "denied", sqlstate=exc.sqlstate, message=exc.message)
        return exc

    def record_error(self, session: Session, protocol: str, text: str | None, sqlstate: str, message: str) -> None:
        """An error the server gave before any statement ran (a rejected Parse) or after all had (at Sync).

        ``text`` None means the error belongs to no statement text: it is recorded as kind ``sync``.
        """
        if text is None:
            info = StatementInfo("sync", "-- error at Sync (implicit commit) or in Bind/Describe/Close")
        else:
            info = single_statement(text)
        session.seq += 1
        rec = StatementRecord(session, session.seq, protocol, info, 0, time.time(), session.rules.decide(info))
        self.finish(rec, "error", sqlstate=sqlstate, message=message)

    def finish(
        self,
        rec: StatementRecord,
        status: str,
        *,
        tag: str | None = None,
        rows: int | None = None,
        sqlstate: str | None = None,
        message: str | None = None,
    ) -> None:
        duration = (perf_counter() - rec.t0) * 1000.0
        decision = rec.decision
        info = rec.info
        kept = rec.kept
        # Positional, in INSERT_COLUMNS["statements"] order: this runs for every statement.
        self.recorder.record_insert(
            "statements",
            (
                rec.session.id,
                rec.seq,
                rec.started_at,
                rec.protocol,
                info.kind,
                info.redacted,
                rec.param_count,
                status,
                tag,
                rows,
                sqlstate,
                safe_error_message(sqlstate, message),
                int(duration * 1000.0 + 0.5) / 1000.0,  # to the microsecond; round(x, 3) costs ~2,000 instructions
                decision.action,
                decision.rule,
                None if decision.allowed else decision.reason,
                masked_json(rec.masked),
                None if kept is None else kept.journaled(rows),
            ),
        )


def masked_json(counts: Counts | None) -> str | None:
    """What a statement's results had masked, for its audit record: no value, only where and how many."""
    if not counts:
        return None
    return json.dumps(
        [{"rule": r, "column": c, "detector": d, "values": n} for (r, c, d), n in sorted(counts.items())]
    )


def masking_policy(config: Config) -> MaskingPolicy:
    m = config.masking
    detectors = [custom(d.name, d.regex, description=d.description) for d in m.detectors]
    rules = [
        MaskRule(
            r.name,
            Style(r.style),
            tuple(ColumnPattern.parse(c) for c in r.columns),
            expand_detectors(r.detect),
            frozenset(r.connections),
            frozenset(r.groups),
            frozenset(r.exempt_groups),
        )
        for r in m.rules
    ]
    return MaskingPolicy(rules, detectors, m.hash_key.value.encode() if m.hash_key else b"")
