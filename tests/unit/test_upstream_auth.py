"""The gateway's side of upstream authentication, checked against scramp's server and PostgreSQL's md5 rule."""

from __future__ import annotations

import hashlib
import struct

import pytest
from scramp import ScramMechanism

from wardgate.protocols.postgres import messages as m
from wardgate.protocols.postgres.auth import UpstreamAuth, UpstreamAuthError


def _body(frame: bytes) -> bytes:
    return frame[5:]


def test_trust_and_cleartext() -> None:
    auth = UpstreamAuth("app", "pw")
    assert auth.on_request(m.AuthRequest(m.AUTH_CLEARTEXT, b"")) == b"p" + struct.pack("!i", 7) + b"pw\0"
    assert auth.on_request(m.AuthRequest(m.AUTH_OK, b"")) == b""
    assert auth.done


def test_md5_matches_postgres_rule() -> None:
    salt = b"\x01\x02\x03\x04"
    reply = UpstreamAuth("app", "pw").on_request(m.AuthRequest(m.AUTH_MD5, salt))
    inner = hashlib.md5(b"pwapp").hexdigest().encode()
    assert _body(reply) == b"md5" + hashlib.md5(inner + salt).hexdigest().encode() + b"\0"


def test_scram_against_a_real_scram_server() -> None:
    mech = ScramMechanism()
    salt, stored, server_key, iterations = mech.make_auth_info("pw", iteration_count=4096)
    server = mech.make_server(lambda _user: (salt, stored, server_key, iterations))
    auth = UpstreamAuth("app", "pw")
    first = auth.on_request(m.AuthRequest(m.AUTH_SASL, b"SCRAM-SHA-256\0\0"))
    body = _body(first)
    mech_name, rest = body.split(b"\0", 1)
    assert mech_name == b"SCRAM-SHA-256"
    server.set_client_first(rest[4:].decode())
    final = auth.on_request(m.AuthRequest(m.AUTH_SASL_CONTINUE, server.get_server_first().encode()))
    server.set_client_final(_body(final).decode())
    assert auth.on_request(m.AuthRequest(m.AUTH_SASL_FINAL, server.get_server_final().encode())) == b""


def test_scram_with_a_wrong_server_proof_fails() -> None:
    mech = ScramMechanism()
    info = mech.make_auth_info("other", iteration_count=4096)
    server = mech.make_server(lambda _user: info)
    auth = UpstreamAuth("app", "pw")
    first = _body(auth.on_request(m.AuthRequest(m.AUTH_SASL, b"SCRAM-SHA-256\0\0")))
    server.set_client_first(first.split(b"\0", 1)[1][4:].decode())
    auth.on_request(m.AuthRequest(m.AUTH_SASL_CONTINUE, server.get_server_first().encode()))
    forged = "v=" + "A" * 43 + "="
    with pytest.raises(UpstreamAuthError, match="proof"):
        auth.on_request(m.AuthRequest(m.AUTH_SASL_FINAL, forged.encode()))


def test_missing_password_and_unknown_methods() -> None:
    with pytest.raises(UpstreamAuthError, match="no password is configured"):
        UpstreamAuth("app", None).on_request(m.AuthRequest(m.AUTH_MD5, b"1234"))
    with pytest.raises(UpstreamAuthError, match="no supported SASL"):
        UpstreamAuth("app", "pw").on_request(m.AuthRequest(m.AUTH_SASL, b"OAUTHBEARER\0\0"))
    with pytest.raises(UpstreamAuthError, match="unsupported"):
        UpstreamAuth("app", "pw").on_request(m.AuthRequest(7, b""))
