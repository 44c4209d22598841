"""Messages -> bytes, for what the gateway itself says to a client or to the upstream server."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from .messages import (
    CANCEL_REQUEST_CODE,
    PROTOCOL_3_0,
    SSL_REQUEST_CODE,
    Field,
)

_I = struct.Struct("!i")
_H = struct.Struct("!h")
_FIELD = struct.Struct("!IhIhih")
_NULL = _I.pack(-1)


def _msg(kind: bytes, body: bytes) -> bytes:
    return kind + _I.pack(len(body) + 4) + body


def _cstr(s: str) -> bytes:
    return s.encode("utf-8").replace(b"\0", b"") + b"\0"


def startup_message(params: dict[str, str], version: int = PROTOCOL_3_0) -> bytes:
    body = _I.pack(version) + b"".join(_cstr(k) + _cstr(v) for k, v in params.items()) + b"\0"
    return _I.pack(len(body) + 4) + body


def ssl_request() -> bytes:
    return _I.pack(8) + _I.pack(SSL_REQUEST_CODE)


def cancel_request(pid: int, secret: int) -> bytes:
    return _I.pack(16) + _I.pack(CANCEL_REQUEST_CODE) + _I.pack(pid) + _I.pack(secret)


def password_message(secret: bytes) -> bytes:
    return _msg(b"p", secret + b"\0")


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    return _msg(b"p", _cstr(mechanism) + _I.pack(len(data)) + data)


def sasl_response(data: bytes) -> bytes:
    return _msg(b"p", data)


def auth_ok() -> bytes:
    return _msg(b"R", _I.pack(0))


def auth_cleartext() -> bytes:
    return _msg(b"R", _I.pack(3))


def parameter_status(name: str, value: str) -> bytes:
    return _msg(b"S", _cstr(name) + _cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return _msg(b"K", _I.pack(pid) + _I.pack(secret))


def ready_for_query(status: str = "I") -> bytes:
    return _msg(b"Z", status.encode("ascii"))


def negotiate_protocol_version(minor: int, unsupported: list[str]) -> bytes:
    return _msg(b"v", _I.pack(minor) + _I.pack(len(unsupported)) + b"".join(_cstr(o) for o in unsupported))


def _fields(severity: str, code: str, message: str, detail: str | None, hint: str | None) -> bytes:
    parts = [b"S" + _cstr(severity), b"V" + _cstr(severity), b"C" + _cstr(code), b"M" + _cstr(message)]
    if detail:
        parts.append(b"D" + _cstr(detail))
    if hint:
        parts.append(b"H" + _cstr(hint))
    return b"".join(parts) + b"\0"


def error_response(
    code: str, message: str, *, severity: str = "ERROR", detail: str | None = None, hint: str | None = None
) -> bytes:
    return _msg(b"E", _fields(severity, code, message, detail, hint))


def notice_response(message: str, *, code: str = "00000", severity: str = "NOTICE", detail: str | None = None) -> bytes:
    return _msg(b"N", _fields(severity, code, message, detail, None))


def fields_message(kind: int, fields: Sequence[tuple[int, bytes]]) -> bytes:
    """An ErrorResponse or NoticeResponse from raw (code, value) fields."""
    return _msg(bytes([kind]), b"".join(bytes([c]) + v + b"\0" for c, v in fields) + b"\0")


def notification(pid: int, channel: bytes, payload: bytes) -> bytes:
    return _msg(b"A", _I.pack(pid) + channel + b"\0" + payload + b"\0")


def describe(kind: str, name: str) -> bytes:
    return _msg(b"D", kind.encode() + _cstr(name))


def copy_data(data: bytes) -> bytes:
    return _msg(b"d", data)


def query(text: str) -> bytes:
    return _msg(b"Q", _cstr(text))


def terminate() -> bytes:
    return _msg(b"X", b"")


def parse(name: str, text: str) -> bytes:
    return _msg(b"P", _cstr(name) + _cstr(text) + b"\0\0")


def row_description(fields: Sequence[Field]) -> bytes:
    body = [_H.pack(len(fields))]
    for f in fields:
        body.append(_cstr(f.name) + _FIELD.pack(f.table_oid, f.column, f.type_oid, f.type_size, f.type_mod, f.format))
    return _msg(b"T", b"".join(body))


def data_row(values: Sequence[bytes | None]) -> bytes:
    body = [_H.pack(len(values))]
    for v in values:
        body.append(_NULL if v is None else _I.pack(len(v)) + v)
    return _msg(b"D", b"".join(body))
