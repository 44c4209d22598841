"""Just-in-time access on a live gateway: a user outside a connection's groups is refused and told how to ask;
`wardgate access request` creates a review; once approved, the first session starts the grant (with its group
elevation); the grant's time is capped by the connection's maximum; every session using it ends when it expires
or is revoked; an expired or used grant does not come back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import PG_HOST, PG_PORT, Gateway, UpstreamDB, flush_wait, run_gateway, unique
from wardgate.store.grants import GrantStore
from wardgate.store.reviews import ReviewStore


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with upstream.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS tickets (id serial PRIMARY KEY, note text)")
    url = f"postgresql://{upstream.role}@{PG_HOST}:{PG_PORT}/{upstream.name}"
    access = {"review": {"approvers": ["sre"]}, "groups": ["writers"]}
    extra = {
        "connections": {"long": {"upstream": url, "allow_groups": ["dba"], "access": {**access, "max_duration": "1h"}}},
        "rules": [{"name": "writes-need-writers", "action": "deny", "when": {"writes": True},
                   "except_groups": ["writers", "dba"], "reason": "only writers write"}],
    }
    with run_gateway(tmp_path_factory.mktemp("access"), upstream, extra=extra,
                     connection={"allow_groups": ["dba"], "access": {**access, "max_duration": "3s"}}) as g:
        yield g


def request(gw: Gateway, user: str, connection: str, *args: str) -> str:
    res = gw.cli("access", "request", connection, "--reason", "INC-9: fix a ticket", "--token", gw.token(user),
                 *args)
    rid = res.stdout.split()[2].rstrip(":")
    assert res.stdout.startswith(f"access request {rid}:"), res.stdout
    return rid


def approve(gw: Gateway, rid: str) -> None:
    gw.cli("reviews", "approve", rid, "--token", gw.token(unique("sre"), "sre"))


def test_refused_then_granted_elevated_and_ended_at_expiry(gw: Gateway, upstream: UpstreamDB) -> None:
    user = unique("eng")
    with pytest.raises(psycopg.OperationalError, match="request access: wardgate access request app"):
        psycopg.connect(gw.dsn(user, gw.token(user))).close()
    rid = request(gw, user, "app", "--for", "1h", "--groups", "writers")
    review = ReviewStore(gw.store()).get(rid)
    assert review is not None and review.kind == "access" and review.access == {"duration": 3.0, "groups": ["writers"]}
    assert review.redacted == "ACCESS app FOR 3s WITH GROUPS writers"
    own = gw.cli("reviews", "approve", rid, "--token", gw.token(user, "sre"), check=False)
    assert own.returncode == 1 and "self-approval" in own.stderr
    with pytest.raises(psycopg.OperationalError):  # not approved yet
        psycopg.connect(gw.dsn(user, gw.token(user))).close()
    approve(gw, rid)
    time.sleep(1.5)  # the time starts at first use, not at approval
    conn = psycopg.connect(gw.dsn(user, gw.token(user)), autocommit=True)
    started = time.monotonic()
    conn.execute("INSERT INTO tickets (note) VALUES ('fixed')")  # the writers elevation
    (grant,) = GrantStore(gw.store()).find(user)
    assert grant.groups == ("writers",) and grant.duration == 3.0 and grant.review_id == rid
    with pytest.raises(psycopg.OperationalError) as err:
        while time.monotonic() - started < 10:
            conn.execute("SELECT 1")
            time.sleep(0.2)
    assert 2.0 < time.monotonic() - started < 5
    assert f"access grant {grant.id}" in str(err.value) and "expired" in str(err.value)
    conn.close()
    with pytest.raises(psycopg.OperationalError, match="requires membership"):  # expired, and used: not again
        psycopg.connect(gw.dsn(user, gw.token(user))).close()
    def user_events() -> list[tuple[str, dict[str, object]]]:
        found = [(e["kind"], e["detail"]) for e in reversed(gw.store().events(limit=300)) if e["subject"] == user]
        return found if any(k == "access_ended" for k, _ in found) else []

    events = flush_wait(user_events)  # audit writes reach the store asynchronously
    kinds = [k for k, _ in events]
    for k in ("access_requested", "access_granted", "access_used", "access_ended"):
        assert k in kinds, kinds
    assert [d["why"] for k, d in events if k == "access_ended"] == ["expired"]
    sessions = flush_wait(lambda: [s for s in gw.store().sessions(user=user) if s["ended_at"]])
    assert sessions[0]["end_reason"] == "access grant expired" and "writers" in sessions[0]["groups"]


def test_revoked_grant_ends_its_sessions_and_no_elevation_without_asking(gw: Gateway) -> None:
    user = unique("eng")
    rid = request(gw, user, "long", "--for", "30m")
    approve(gw, rid)
    conn = psycopg.connect(gw.dsn(user, gw.token(user), dbname="long"), autocommit=True)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="writes-need-writers"):
        conn.execute("INSERT INTO tickets (note) VALUES ('no')")  # access, but no writers group asked for
    (grant,) = GrantStore(gw.store()).find(user)
    assert grant.duration == 1800 and grant.groups == ()
    other = psycopg.connect(gw.dsn(user, gw.token(user), dbname="long"), autocommit=True)  # the same grant
    assert len(GrantStore(gw.store()).find(user)) == 1
    res = gw.cli("access", "revoke", grant.id[:6], "--reason", "done early")
    assert res.stdout.strip() == f"revoked {grant.id}"
    started = time.monotonic()
    for c in (conn, other):
        with pytest.raises(psycopg.OperationalError, match="revoked"):
            while time.monotonic() - started < 10:
                c.execute("SELECT 1")
                time.sleep(0.2)
        c.close()
    assert time.monotonic() - started < 6
    with pytest.raises(psycopg.OperationalError, match="requires membership"):
        psycopg.connect(gw.dsn(user, gw.token(user), dbname="long")).close()
    bad = gw.cli("access", "request", "long", "--for", "1h", "--reason", "x", "--groups", "dba",
                 "--token", gw.token(user), check=False)
    assert bad.returncode == 2 and "not grantable on long: dba" in bad.stderr
