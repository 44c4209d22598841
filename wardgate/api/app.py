"""The HTTP API (FastAPI): review requests for reviewers and requesters, and exec.

Every call carries the caller's own token (``Authorization: Bearer ...``), verified like a database login. A
caller sees the requests they made and those they may vote on (a member of one of its approver groups); others
answer 404, so the API does not tell which ids exist. Votes go through the same path as ``wardgate reviews``
(``reviews.votes.cast``: self-approval, outsiders, double votes refused) and are recorded in the audit journal.

``POST /api/v1/exec`` runs one query string as the caller: the API is a client of the gateway's own PostgreSQL
listener with the caller's token, so the same policy, review, masking and audit apply as for psql. OpenAPI is
served at ``/api/openapi.json`` and ``/api/docs``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run time.
import asyncio
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ..config import Config, parse_host_port
from ..identity.model import AuthFailure, Identity
from ..pipeline import Pipeline
from ..reviews.model import VoteRefused
from ..reviews.votes import cast, details
from ..store import StoreError
from ..store.reviews import Review

_bearer = HTTPBearer(auto_error=False)


class VoteBody(BaseModel):
    reason: str = Field(default="", max_length=2000)


class ExecBody(BaseModel):
    connection: str
    sql: str = Field(min_length=1, max_length=1_000_000)
    wait: bool = True  # false: a statement held for review answers 202 with its request, which stays pending


class Caller:
    def __init__(self, identity: Identity, token: str, address: str) -> None:
        self.identity = identity
        self.token = token
        self.address = address


def create_app(config: Config, pipeline: Pipeline) -> FastAPI:
    app = FastAPI(title="wardgate", version="1", openapi_url="/api/openapi.json", docs_url="/api/docs",
                  redoc_url=None)
    rs = pipeline.reviews

    async def caller(request: Request,
                     creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
        address = f"{request.client.host}:{request.client.port}" if request.client else "http"
        if creds is None or creds.scheme.lower() != "bearer":
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        loop = asyncio.get_running_loop()
        try:
            who = await loop.run_in_executor(None, pipeline.identify, creds.credentials)
        except AuthFailure as exc:
            pipeline.record_event("auth_failed", None, {"via": "http api", "reason": exc.reason}, address)
            raise HTTPException(401, f"the token was refused: {exc.reason}",
                                headers={"WWW-Authenticate": "Bearer"}) from None
        except StoreError:
            raise HTTPException(503, "wardgate cannot verify tokens right now (store unavailable)") from None
        return Caller(who, creds.credentials, address)

    Who = Annotated[Caller, Depends(caller)]

    def visible(r: Review, who: Identity) -> bool:
        return r.requester == who.subject or bool(set(r.spec.approvers) & set(who.groups))

    async def find(review_id: str, who: Identity) -> Review:
        loop = asyncio.get_running_loop()
        try:
            r = await loop.run_in_executor(None, rs.get, review_id)
        except StoreError:
            raise HTTPException(503, "the review store is unavailable") from None
        if r is None or not visible(r, who):
            raise HTTPException(404, f"no review request {review_id} that you may see")
        return r

    @app.get("/api/v1/reviews", summary="Review requests you made or may vote on, newest first")
    async def list_reviews(who: Who, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(None, rs.list, status, min(max(limit, 1), 500) * 4)
        except StoreError:
            raise HTTPException(503, "the review store is unavailable") from None
        return [r.public() for r in rows if visible(r, who.identity)][:limit]

    @app.get("/api/v1/reviews/{review_id}", summary="One review request with its votes")
    async def show_review(review_id: str, who: Who) -> dict[str, Any]:
        return (await find(review_id, who.identity)).public()

    async def vote(review_id: str, who: Caller, approve: bool, reason: str) -> dict[str, Any]:
        review = await find(review_id, who.identity)
        ident = who.identity

        def record(kind: str, r: Review, detail: dict[str, Any]) -> None:
            pipeline.record_event(kind, ident.subject, details(r, ident, detail), who.address, r.connection,
                                  r.session_id)

        loop = asyncio.get_running_loop()
        try:
            after = await loop.run_in_executor(None, cast, rs, pipeline.outbox, config.notifications, ident, review,
                                               approve, reason, record, pipeline.gateway_id)
        except VoteRefused as exc:
            raise HTTPException(403, f"your vote was refused: {exc.reason}") from None
        except StoreError:
            raise HTTPException(503, "the review store is unavailable") from None
        return after.public()

    @app.post("/api/v1/reviews/{review_id}/approve", summary="Approve, as the identity of your token")
    async def approve(review_id: str, body: VoteBody, who: Who) -> dict[str, Any]:
        return await vote(review_id, who, True, body.reason)

    @app.post("/api/v1/reviews/{review_id}/deny", summary="Deny (one denial is enough); the requester sees why")
    async def deny(review_id: str, body: VoteBody, who: Who) -> dict[str, Any]:
        return await vote(review_id, who, False, body.reason)

    @app.get("/api/v1/login", summary="What `wardgate login` needs: the identity providers and the listener")
    async def login_config() -> dict[str, Any]:
        # Public by design (like an IdP's discovery document): issuer URLs and public client ids, nothing secret.
        return {
            "postgres": config.listen.postgres,
            "tls": config.tls_enabled,
            "providers": [{"issuer": p.issuer, "client_id": p.client_id, "scopes": p.scopes, "audience": p.audience}
                          for p in config.identity.oidc if p.client_id],
        }

    @app.get("/api/v1/whoami", summary="Who your token proves you are, as the gateway decides with it")
    async def whoami(who: Who) -> dict[str, Any]:
        ident = who.identity
        return {"user": ident.subject, "groups": list(ident.groups), "method": ident.method,
                "issuer": ident.issuer, "subject": ident.idp_subject, "expires_at": ident.expires_at}

    @app.post("/api/v1/exec", summary="Run one query string through the gateway, as you")
    async def exec_(body: ExecBody, who: Who) -> JSONResponse:
        host, port = parse_host_port(config.listen.postgres)
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard listener is reached on loopback
            host = "127.0.0.1"
        notices: list[str] = []
        params: dict[str, Any] = {
            "host": host, "port": port, "dbname": body.connection, "user": who.identity.subject,
            "password": who.token, "sslmode": "require" if config.tls_enabled else "disable",
            "application_name": "wardgate api exec", "connect_timeout": 10, "autocommit": True}
        if not body.wait:
            params["options"] = "-c wardgate.review_wait=off"
        try:
            conn = await psycopg.AsyncConnection.connect(**params)
        except psycopg.OperationalError as exc:
            return JSONResponse({"error": str(exc).strip().splitlines()[0] if str(exc).strip() else "cannot connect"},
                                status_code=502)
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        try:
            cur = psycopg.AsyncClientCursor(conn)
            try:
                await cur.execute(body.sql.encode())
            except psycopg.Error as exc:
                d = exc.diag
                payload = {"sqlstate": d.sqlstate, "message": d.message_primary, "detail": d.message_detail,
                           "hint": d.message_hint, "notices": notices}
                held = d.message_detail or ""
                if not body.wait and held.startswith("review: "):
                    return JSONResponse({"review": held.removeprefix("review: "), "status": "pending",
                                         "notices": notices, "message": d.message_primary}, status_code=202)
                return JSONResponse(payload, status_code=403 if d.sqlstate == "42501" else 400)
            results: list[dict[str, Any]] = []
            while True:
                if cur.description is None:
                    results.append({"status": cur.statusmessage})
                else:
                    rows = await cur.fetchall()
                    results.append({"status": cur.statusmessage, "columns": [c.name for c in cur.description],
                                    "rows": [[None if v is None else str(v) for v in r] for r in rows]})
                if not cur.nextset():
                    break
            return JSONResponse({"results": results, "notices": notices})
        finally:
            await conn.close()

    return app
