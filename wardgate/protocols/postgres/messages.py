"""The messages the gateway needs to understand, one small frozen class each.

Everything else on the wire is relayed as an opaque frame: a proxy that decodes only what it must stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Codes of the untyped first messages a client may send.
PROTOCOL_3_0 = 196608
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

# Frontend (client -> server) message types, as the integer value of their type byte.
QUERY = ord("Q")
PARSE = ord("P")
BIND = ord("B")
EXECUTE = ord("E")
DESCRIBE = ord("D")
CLOSE = ord("C")
SYNC = ord("S")
FLUSH = ord("H")
TERMINATE = ord("X")
PASSWORD = ord("p")
COPY_DATA = ord("d")
COPY_DONE = ord("c")
COPY_FAIL = ord("f")
FUNCTION_CALL = ord("F")

# Backend (server -> client) message types.
AUTHENTICATION = ord("R")
PARAMETER_STATUS = ord("S")
BACKEND_KEY_DATA = ord("K")
READY_FOR_QUERY = ord("Z")
ERROR_RESPONSE = ord("E")
NOTICE_RESPONSE = ord("N")
COMMAND_COMPLETE = ord("C")
EMPTY_QUERY_RESPONSE = ord("I")
PORTAL_SUSPENDED = ord("s")
DATA_ROW = ord("D")
ROW_DESCRIPTION = ord("T")
NEGOTIATE_PROTOCOL_VERSION = ord("v")
PARSE_COMPLETE = ord("1")

# Authentication request codes (payload of an 'R' message).
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


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
