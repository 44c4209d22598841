"""Who may open a session: tokens, user names, connections, groups, TLS. Every refusal is audited, no token is."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import Gateway, UpstreamDB, flush_wait, login_error, run_gateway


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with run_gateway(tmp_path_factory.mktemp("auth"), upstream, connection={"allow_groups": ["eng", "sre"]}) as g:
        yield g


def _events(gw: Gateway, user: str) -> list[dict[str, object]]:
    store = gw.store()
    return flush_wait(lambda: [e for e in store.events() if e["subject"] == user])  # type: ignore[no-any-return]


def _assert_no_secret(gw: Gateway, token: str) -> None:
    assert token not in gw.log()
    with gw.store().engine.connect() as conn:
        for table in ("events", "sessions", "statements", "tokens"):
            dump = repr(conn.exec_driver_sql(f"SELECT * FROM {table}").fetchall())
            assert token not in dump
            parts = token.split(".")
            if len(parts) == 3:  # a JWT: not even its signature may be kept
                assert parts[2] not in dump


def test_valid_token_opens_a_session(gw: Gateway) -> None:
    token = gw.token("ok-user", "sre")
    with psycopg.connect(gw.dsn("ok-user", token)) as conn:
        assert conn.execute("select current_database()").fetchone() is not None
    _assert_no_secret(gw, token)


def test_wrong_token_is_28P01_and_audited(gw: Gateway) -> None:
    code, msg = login_error(gw, "mallory", "not-a-token")
    assert code == "28P01"
    assert 'authentication failed for user "mallory"' in msg
    (event,) = _events(gw, "mallory")
    assert event["kind"] == "auth_failed" and event["connection"] == "app"
    assert event["detail"] == {"reason": "the password is not a token this gateway accepts"}
    _assert_no_secret(gw, "not-a-token")


def test_token_of_someone_else(gw: Gateway) -> None:
    token = gw.token("bob")
    code, msg = login_error(gw, "eve", token)
    assert code == "28P01" and 'belongs to "bob"' in msg
    _assert_no_secret(gw, token)


def test_revoked_token(gw: Gateway) -> None:
    token = gw.token("revokee")
    token_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    gw.cli("token", "revoke", token_id)
    code, msg = login_error(gw, "revokee", token)
    assert code == "28P01" and "revoked" in msg
    assert _events(gw, "revokee")[0]["detail"] == {"reason": "token revoked", "issuer": "wardgate"}
    _assert_no_secret(gw, token)


def test_only_the_issued_token_is_accepted(gw: Gateway) -> None:
    """The store keeps the SHA-256 of each token: the same id re-signed with other claims (as someone holding the
    signing key could) is not the token that was issued."""
    token = gw.token("hashed", "eng")
    claims = jwt.decode(token, options={"verify_signature": False})
    from wardgate.identity.keys import load_or_create

    key = load_or_create(gw.store(), None)
    wider = jwt.encode({**claims, "groups": ["eng", "dba"]}, key.private, algorithm="EdDSA",
                       headers={"kid": key.kid})
    code, msg = login_error(gw, "hashed", wider)
    assert code == "28P01" and "does not match the one issued" in msg
    row = gw.store().token(claims["jti"])
    assert row is not None and row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(gw.store().tokens(), default=str)


def test_service_account_tokens_follow_the_account(gw: Gateway) -> None:
    gw.cli("service-account", "create", "billing-agent", "--groups", "eng", "--description", "nightly billing")
    out = gw.cli("token", "create", "--service-account", "billing-agent", "--json").stdout
    issued = json.loads(out)
    token = issued["token"]
    assert issued["user"] == "billing-agent" and issued["groups"] == ["eng"]
    with psycopg.connect(gw.dsn("billing-agent", token)) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    rows = flush_wait(lambda: gw.store().sessions(user="billing-agent"))
    assert rows[0]["groups"] == ["eng"] and rows[0]["issuer"] == "wardgate"
    gw.cli("service-account", "set-groups", "billing-agent", "eng,support")
    with psycopg.connect(gw.dsn("billing-agent", token)) as conn:
        conn.execute("select 1")
    rows = flush_wait(lambda: [r for r in gw.store().sessions(user="billing-agent") if len(r["groups"]) == 2])
    assert rows[0]["groups"] == ["eng", "support"]
    listing = gw.cli("service-account", "list").stdout
    assert "billing-agent" in listing and "eng,support" in listing and "nightly billing" in listing
    gw.cli("service-account", "disable", "billing-agent")
    code, msg = login_error(gw, "billing-agent", token)
    assert code == "28P01" and "service account billing-agent is disabled" in msg
    assert gw.cli("token", "create", "--service-account", "billing-agent", check=False).returncode != 0
    assert gw.cli("service-account", "create", "billing-agent", check=False).returncode == 1
    assert gw.cli("token", "create", "--service-account", "billing-agent", "--groups", "dba",
                  check=False).returncode == 2
    kinds = [e["kind"] for e in _events(gw, "billing-agent")]
    for kind in ("service_account_created", "service_account_changed", "service_account_disabled"):
        assert kind in kinds
    _assert_no_secret(gw, token)


def test_expired_token(gw: Gateway) -> None:
    token = gw.token("late", ttl=1)
    claims = jwt.decode(token, options={"verify_signature": False})
    # Wait out the token and the verifier's 30 s leeway without sleeping: re-sign it already expired.
    store = gw.store()
    from wardgate.identity.keys import load_or_create

    key = load_or_create(store, None)
    claims["exp"] = claims["iat"] - 3600
    expired = jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})
    code, msg = login_error(gw, "late", expired)
    assert code == "28P01" and "expired" in msg
    _assert_no_secret(gw, expired)


def test_forged_token(gw: Gateway) -> None:
    token = gw.token("forger")
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    forged = jwt.encode({**claims, "groups": ["eng", "admin"]}, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                        headers={"kid": header["kid"]})
    code, msg = login_error(gw, "forger", forged)
    assert code == "28P01" and "signature" in msg
    _assert_no_secret(gw, forged)


def test_unknown_connection_is_3D000(gw: Gateway) -> None:
    token = gw.token("lost")
    code, msg = login_error(gw, "lost", token, dbname="nope")
    assert code == "3D000" and 'connection "nope" does not exist' in msg


def test_group_not_allowed_is_28000_and_audited(gw: Gateway) -> None:
    token = gw.token("outsider", "marketing")
    code, msg = login_error(gw, "outsider", token)
    assert code == "28000" and "eng, sre" in msg
    (event,) = _events(gw, "outsider")
    assert event["kind"] == "connection_refused"
    assert event["detail"] == {"reason": "not in an allowed group", "groups": ["marketing"]}


def test_plaintext_is_refused_by_default(gw: Gateway) -> None:
    token = gw.token("plain")
    code, msg = login_error(gw, "plain", token, tls=False)
    assert code == "28000" and "requires TLS" in msg


def test_plaintext_listener_when_allowed(upstream: UpstreamDB, tmp_path: Path) -> None:
    with run_gateway(tmp_path, upstream, extra={"listen": {"allow_plaintext": True}, "tls": {"self_signed": False}}
                     ) as g:
        token = g.token("plainok")
        with psycopg.connect(g.dsn("plainok", token, sslmode="disable")) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        # No certificate configured: a client that insists on TLS is told no.
        with pytest.raises(psycopg.OperationalError, match="does not support SSL"):
            psycopg.connect(g.dsn("plainok", token, sslmode="require"), connect_timeout=10)


def test_verify_full_against_the_self_signed_certificate(gw: Gateway) -> None:
    token = gw.token("strict")
    cert = gw.workdir / "data" / "gateway.crt"
    with psycopg.connect(gw.dsn("strict", token, sslmode="verify-full", sslrootcert=str(cert))) as conn:
        assert conn.info.pgconn.ssl_in_use
