"""The messages the gateway needs to understand, one small frozen class each.

Everything else on the wire is relayed as an opaque frame: a proxy that decodes only what it must stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

# Codes of the untyped first messages a client may send.
PROTOCOL_3_0: Final = 196608
SSL_REQUEST_CODE: Final = 80877103
GSSENC_REQUEST_CODE: Final = 80877104
CANCEL_REQUEST_CODE: Final = 80877102

# Frontend (client -> server) message types, as the integer value of their type byte. Final literals: compiled
# code (mypyc) inlines them, where a plain module attribute would be looked up at each use.
QUERY: Final = 81  # "Q"
PARSE: Final = 80  # "P"
BIND: Final = 66  # "B"
EXECUTE: Final = 69  # "E"
DESCRIBE: Final = 68  # "D"
CLOSE: Final = 67  # "C"
SYNC: Final = 83  # "S"
FLUSH: Final = 72  # "H"
TERMINATE: Final = 88  # "X"
PASSWORD: Final = 112  # "p"
COPY_DATA: Final = 100  # "d"
COPY_DONE: Final = 99  # "c"
COPY_FAIL: Final = 102  # "f"
FUNCTION_CALL: Final = 70  # "F"

# Backend (server -> client) message types.
AUTHENTICATION: Final = 82  # "R"
PARAMETER_STATUS: Final = 83  # "S"
BACKEND_KEY_DATA: Final = 75  # "K"
READY_FOR_QUERY: Final = 90  # "Z"
ERROR_RESPONSE: Final = 69  # "E"
NOTICE_RESPONSE: Final = 78  # "N"
COMMAND_COMPLETE: Final = 67  # "C"
EMPTY_QUERY_RESPONSE: Final = 73  # "I"
PORTAL_SUSPENDED: Final = 115  # "s"
DATA_ROW: Final = 68  # "D"
ROW_DESCRIPTION: Final = 84  # "T"
NEGOTIATE_PROTOCOL_VERSION: Final = 118  # "v"
PARSE_COMPLETE: Final = 49  # "1"

# Authentication request codes (payload of an 'R' message).
AUTH_OK: Final = 0
AUTH_CLEARTEXT: Final = 3
AUTH_MD5: Final = 5
AUTH_SASL: Final = 10
AUTH_SASL_CONTINUE: Final = 11
AUTH_SASL_FINAL: Final = 12


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """Protocol version and the key/value parameters (user, database, application_name, options...)."""

    major: int
    minor: int
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class SSLRequest:
    pass


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    pass


@dataclass(frozen=True, slots=True)
class CancelRequest:
    pid: int
    secret: int


StartupPacket = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest


@dataclass(frozen=True, slots=True)
class Parse:
    name: str
    query: str
    param_types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Bind:
    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Execute:
    portal: str
    max_rows: int


@dataclass(frozen=True, slots=True)
class Close:
    kind: str  # "S" statement or "P" portal
    name: str


@dataclass(frozen=True, slots=True)
class Field:
    """One column of a RowDescription: where it comes from (table OID and column number, 0 for an expression),
    its type, and whether its values come as text (0) or binary (1)."""

    name: str
    table_oid: int
    column: int
    type_oid: int
    type_size: int
    type_mod: int
    format: int


@dataclass(frozen=True, slots=True)
class ErrorFields:
    """Fields of an ErrorResponse or NoticeResponse, keyed by their one-letter codes."""

    fields: dict[str, str] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return self.fields.get("V") or self.fields.get("S", "")

    @property
    def code(self) -> str:
        return self.fields.get("C", "")

    @property
    def message(self) -> str:
        return self.fields.get("M", "")


@dataclass(frozen=True, slots=True)
class AuthRequest:
    code: int
    data: bytes
