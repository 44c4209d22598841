"""The client side of authentication to the upstream server, as a small state machine.

The gateway answers whatever the server asks for (trust, cleartext, md5, SCRAM-SHA-256) with the credential it
holds; the user's own secret never reaches the server.
"""

from __future__ import annotations

import hashlib

from scramp import ScramClient

from . import encode
from .messages import (
    AUTH_CLEARTEXT,
    AUTH_MD5,
    AUTH_OK,
    AUTH_SASL,
    AUTH_SASL_CONTINUE,
    AUTH_SASL_FINAL,
    AuthRequest,
)

SCRAM = "SCRAM-SHA-256"


class UpstreamAuthError(Exception):
    """Authentication to the upstream cannot proceed (missing password, unsupported method, bad server proof)."""


class UpstreamAuth:
    """Feed each AuthenticationRequest; get back the bytes to send (or ``b""``), until ``done``."""

    def __init__(self, user: str, password: str | None) -> None:
        self.user = user
        self.password = password
        self.done = False
        self.method = "trust"
        self._scram: ScramClient | None = None

    def _need_password(self, method: str) -> str:
        if self.password is None:
            raise UpstreamAuthError(f"the upstream asks for {method} authentication but no password is configured")
        return self.password

    def on_request(self, req: AuthRequest) -> bytes:
        if req.code == AUTH_OK:
            self.done = True
            return b""
        if req.code == AUTH_CLEARTEXT:
            self.method = "password"
            return encode.password_message(self._need_password("password").encode("utf-8"))
        if req.code == AUTH_MD5:
            self.method = "md5"
            if len(req.data) != 4:
                raise UpstreamAuthError("malformed md5 salt from upstream")
            pw = self._need_password("md5").encode("utf-8")
            inner = hashlib.md5(pw + self.user.encode("utf-8")).hexdigest().encode("ascii")  # noqa: S324 (protocol)
            outer = hashlib.md5(inner + req.data).hexdigest()  # noqa: S324 (protocol)
            return encode.password_message(b"md5" + outer.encode("ascii"))
        if req.code == AUTH_SASL:
            mechanisms = [m.decode("ascii", "replace") for m in req.data.split(b"\0") if m]
            if SCRAM not in mechanisms:
                raise UpstreamAuthError(f"the upstream offers no supported SASL mechanism ({', '.join(mechanisms)})")
            self.method = "scram-sha-256"
            self._scram = ScramClient([SCRAM], self.user, self._need_password("SCRAM"))
            first = self._scram.get_client_first().encode("utf-8")
            return encode.sasl_initial_response(SCRAM, first)
        if req.code == AUTH_SASL_CONTINUE:
            if self._scram is None:
                raise UpstreamAuthError("SASL continue without a SASL exchange")
            try:
                self._scram.set_server_first(req.data.decode("utf-8"))
                return encode.sasl_response(self._scram.get_client_final().encode("utf-8"))
            except Exception as exc:
                raise UpstreamAuthError(f"SCRAM exchange failed: {exc}") from exc
        if req.code == AUTH_SASL_FINAL:
            if self._scram is None:
                raise UpstreamAuthError("SASL final without a SASL exchange")
            try:
                self._scram.set_server_final(req.data.decode("utf-8"))
            except Exception as exc:
                raise UpstreamAuthError(f"the upstream's SCRAM proof is invalid: {exc}") from exc
            return b""
        raise UpstreamAuthError(f"unsupported upstream authentication method (code {req.code})")
