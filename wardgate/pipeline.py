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
from dataclasses import dataclass, field
from typing import Any

from .audit.recorder import AuditUnavailable, Recorder
from .config import Config, PostgresConnection
from .identity.model import Authenticator, AuthFailure, Identity
from .policy.sql import StatementInfo, classify
from .store import StoreError
from .store.db import Write

log = logging.getLogger("wardgate.pipeline")


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


_UNKNOWN_STATEMENT = StatementInfo("unknown", "-- a statement prepared outside the protocol (SQL PREPARE)")


def single_statement(text: str) -> StatementInfo:
    """The one statement of an extended-protocol text (the server refuses several; record what was tried)."""
    infos = classify(text)
    if len(infos) == 1:
        return infos[0]
    if not infos:
        return StatementInfo("empty", "")
    return StatementInfo("multiple", "; ".join(i.redacted or "?" for i in infos))


class SessionRefused(Exception):
    """A session cannot open; ``sqlstate`` and ``message`` go to the client as they are."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


class StatementRefused(Exception):
    """A statement must not run; the client gets ``sqlstate`` and ``message``."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


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
    seq: int = 0
    ended: bool = False


@dataclass(slots=True)
class StatementRecord:
    """One statement in flight, from the moment the pipeline sees it to its outcome."""

    session: Session
    seq: int
    protocol: str
    info: StatementInfo
    param_count: int
    started_at: float  # epoch seconds
    t0: float = field(default_factory=time.perf_counter)
    rows_seen: int = 0


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
        if conn.allow_groups and not set(conn.allow_groups) & set(identity.groups):
            self._event(
                "connection_refused",
                user,
                connection_name,
                client,
                {"reason": "not in an allowed group", "groups": list(identity.groups)},
            )
            raise SessionRefused(
                "28000",
                f'user "{user}" may not use connection "{connection_name}": '
                f"it requires membership in one of: {', '.join(conn.allow_groups)}",
            )
        session = Session(str(uuid.uuid4()), identity, connection_name, conn, client, time.time())
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
                    },
                )
            )
            self.recorder.commit()
        except AuditUnavailable as exc:
            raise SessionRefused("08004", f"wardgate cannot record this session, so it is refused: {exc}") from None
        self._check_audit()
        return session

    def _check_audit(self) -> None:
        if not self.recorder.accepting:
            raise SessionRefused(
                "08004", "wardgate's audit store is unavailable; sessions are refused until it recovers"
            )

    def _authenticate(self, user: str, credential: str, connection_name: str, client: ClientInfo) -> Identity:
        try:
            if not credential:
                raise AuthFailure("no token given as password")
            for auth in self.authenticators:
                if auth.accepts(credential):
                    identity = auth.verify(credential)
                    break
            else:
                raise AuthFailure("the password is not a token this gateway accepts")
            if identity.subject != user:
                raise AuthFailure(f'the token belongs to "{identity.subject}", not to "{user}"')
        except AuthFailure as exc:
            self._event("auth_failed", user, connection_name, client, {"reason": exc.reason})
            raise SessionRefused("28P01", f'authentication failed for user "{user}": {exc.reason}') from None
        except StoreError as exc:
            log.error("identity check failed, store unavailable: %s", exc)
            self._event("auth_failed", user, connection_name, client, {"reason": "store unavailable"})
            raise SessionRefused("08004", "wardgate cannot verify tokens right now (store unavailable)") from None
        return identity

    def application_name_changed(self, session: Session, name: str) -> None:
        """Clients such as pgjdbc name themselves with SET after login; the session record follows."""
        self.recorder.record(Write("sessions", {"id": session.id, "application_name": name[:256]}, key="id"))

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
        self._commit_or_log(f"the end of session {session.id} ({reason})")

    def commit(self) -> None:
        """Make every staged record durable (journal) before the front-end answers the client."""
        self.recorder.commit()

    def _commit_or_log(self, what: str) -> None:
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
        self._commit_or_log(f"audit event {kind}")

    # --- statements -----------------------------------------------------------------------------------------

    def _admit(self) -> None:
        if not self.recorder.accepting:
            # The cause (which may name the store's host) is in the gateway's log, not in the client's error.
            raise StatementRefused(
                "58030",
                "wardgate refuses the statement: its audit store is unavailable, and nothing runs "
                "unrecorded; try again when it recovers",
            )

    def on_query(self, session: Session, text: str) -> list[StatementRecord]:
        """A simple-protocol query string: one record per statement in it, decided as a whole."""
        self._admit()
        started = time.time()
        records = []
        for info in classify(text):
            session.seq += 1
            records.append(StatementRecord(session, session.seq, "simple", info, 0, started))
        return records

    def on_execute(self, session: Session, text: str | None, param_count: int) -> StatementRecord:
        """An extended-protocol Execute of ``text`` bound to ``param_count`` values (``text`` None: a statement
        the protocol never showed the gateway, e.g. one made with SQL PREPARE)."""
        self._admit()
        info = single_statement(text) if text is not None else _UNKNOWN_STATEMENT
        session.seq += 1
        return StatementRecord(session, session.seq, "extended", info, param_count, time.time())

    def on_function_call(self, session: Session, function_oid: int, nargs: int) -> StatementRecord:
        self._admit()
        session.seq += 1
        info = StatementInfo("function_call", f"-- function call: oid {function_oid}")
        return StatementRecord(session, session.seq, "function", info, nargs, time.time())

    def record_error(self, session: Session, protocol: str, text: str | None, sqlstate: str, message: str) -> None:
        """An error the server gave before any statement ran (a rejected Parse) or after all had (at Sync).

        ``text`` None means the error belongs to no statement text: it is recorded as kind ``sync``.
        """
        if text is None:
            info = StatementInfo("sync", "-- error at Sync (implicit commit) or in Bind/Describe/Close")
        else:
            info = single_statement(text)
        session.seq += 1
        rec = StatementRecord(session, session.seq, protocol, info, 0, time.time())
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
        duration = (time.perf_counter() - rec.t0) * 1000.0
        # Positional, in INSERT_COLUMNS["statements"] order: this runs for every statement.
        self.recorder.record(
            Write(
                "statements",
                (
                    rec.session.id,
                    rec.seq,
                    rec.started_at,
                    rec.protocol,
                    rec.info.kind,
                    rec.info.redacted,
                    rec.param_count,
                    status,
                    tag,
                    rows,
                    sqlstate,
                    safe_error_message(sqlstate, message),
                    round(duration, 3),
                ),
            )
        )
