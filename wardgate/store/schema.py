"""The tables. Migrations in ``migrations/versions`` create exactly these; a test checks they agree."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_pem", Text, nullable=False),
    Column("public_pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("subject", String(256), nullable=False, index=True),
    Column("groups", Text, nullable=False),  # JSON list
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("created_by", String(256), nullable=False),
    Column("token_hash", String(64)),  # SHA-256 of the token: the token itself is never stored
    Column("account", String(64)),  # the service account it was issued to, if any
)

service_accounts = Table(
    "service_accounts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("groups", Text, nullable=False),  # JSON list; its tokens get these groups when they are used
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    Column("disabled_by", String(256)),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user", String(256), nullable=False),
    Column("groups", Text, nullable=False),  # JSON list
    Column("auth_method", String(32), nullable=False),
    Column("token_id", String(64)),
    Column("connection", String(64), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("client_addr", String(64), nullable=False),
    Column("application_name", String(256), nullable=False),
    Column("gateway", String(128), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("end_reason", String(256)),
    Column("bytes_from_client", BigInteger, nullable=False, default=0),
    Column("bytes_to_client", BigInteger, nullable=False, default=0),
    Column("masking", Text),  # JSON: {"rules": [applied], "exempt": [rules the session's groups are exempt from]}
    Column("issuer", String(512)),  # who vouched for the user: "wardgate" or an IdP's issuer URL
    Column("idp_subject", String(256)),  # the IdP's stable sub claim
    Index("ix_sessions_started_at", "started_at"),
    Index("ix_sessions_user", "user"),
)

statements = Table(
    "statements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(36), ForeignKey("sessions.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("protocol", String(16), nullable=False),  # simple | extended | function
    Column("kind", String(32), nullable=False),
    Column("text", Text),  # literals replaced by $n; NULL when the text could not even be lexed
    Column("param_count", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # ok | error | skipped | denied | refused | lost | held
    Column("command_tag", String(64)),
    Column("row_count", BigInteger),
    Column("sqlstate", String(5)),
    Column("error_message", Text),
    Column("duration_ms", Float),
    Column("decision", String(16)),  # allow | deny | review: what the policy decided
    Column("rule", String(64)),  # the rule that decided ("default" when none matched)
    Column("reason", Text),  # why, for deny and review
    Column("masked", Text),  # JSON list of {rule, column, detector, values}: what was masked in the results
    Column("result_sample", Text),  # JSON: the result's first rows as the client received them (audit/samples.py)
    Index("ix_statements_session_seq", "session_id", "seq", unique=True),
    Index("ix_statements_started_at", "started_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("subject", String(256)),
    Column("connection", String(64)),
    Column("client_addr", String(64)),
    Column("session_id", String(36)),
    Column("detail", Text, nullable=False),  # JSON object; never holds a secret
    Index("ix_events_at", "at"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | denied | expired | withdrawn | executed
    Column("requester", String(256), nullable=False),
    Column("requester_groups", Text, nullable=False),  # JSON list
    Column("connection", String(64), nullable=False),
    Column("session_id", String(36)),
    Column("gateway", String(128), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("rule_reason", Text, nullable=False),
    Column("statement", Text, nullable=False),  # exactly what runs if approved (never sent in notifications)
    Column("redacted", Text),  # literals replaced by $n: what notices, listings and the audit log show
    Column("param_count", Integer, nullable=False),
    Column("reason", Text),  # the requester's
    Column("spec", Text, nullable=False),  # JSON: approvers, min_approvals, all_groups
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_by", Text),  # JSON list of the reviewers whose votes decided
    Column("decision_reason", Text),
    Column("executed_at", DateTime(timezone=True)),
    Column("kind", String(16), nullable=False, server_default="statement"),  # statement | access
    Column("access", Text),  # JSON for kind access: {"duration": seconds, "groups": [elevations]}
    Index("ix_reviews_status", "status"),
    Index("ix_reviews_created_at", "created_at"),
)

review_votes = Table(
    "review_votes",
    metadata,
    Column("review_id", String(16), ForeignKey("reviews.id"), primary_key=True),
    Column("reviewer", String(256), primary_key=True),  # one vote per reviewer
    Column("groups", Text, nullable=False),  # JSON list, as the reviewer's token said when voting
    Column("approve", Integer, nullable=False),  # 1 approve, 0 deny
    Column("reason", Text),
    Column("at", DateTime(timezone=True), nullable=False),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("review_id", String(16), ForeignKey("reviews.id"), nullable=False, unique=True),
    Column("subject", String(256), nullable=False),
    Column("connection", String(64), nullable=False),
    Column("groups", Text, nullable=False),  # JSON list: groups the holder has on top of their own
    Column("duration", Float, nullable=False),  # seconds, from the first session that uses it
    Column("approved_by", Text, nullable=False),  # JSON list
    Column("created_at", DateTime(timezone=True), nullable=False),  # when the approved request was first used
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", String(256)),
    Column("revoke_reason", Text),
    Index("ix_grants_subject_connection", "subject", "connection"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("event", String(32), nullable=False),  # review_requested | review_decided
    Column("review_id", String(16), nullable=False),
    Column("channel", String(64), nullable=False),  # a webhook's name, or "email"
    Column("payload", Text, nullable=False),  # what is sent (JSON); never holds a secret or a raw statement
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_until", DateTime(timezone=True)),  # a gateway is delivering it until then
    Column("last_error", Text),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_notifications_due", "status", "next_attempt_at"),
)

journal_offsets = Table(
    "journal_offsets",
    metadata,
    Column("journal", String(200), primary_key=True),
    Column("offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# --- the tamper-evident audit (audit/chain.py): append-only, hash-chained per writer --------------------------------

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("chain", String(160), primary_key=True),  # the writer: a gateway process's journal, or "cli"
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),  # chain.iso: the exact text the hash covers
    Column("prev", String(64), nullable=False),
    Column("record", Text, nullable=False),  # canonical JSON of the audit write
    Column("hash", String(64), nullable=False),
    Index("ix_audit_entries_at", "at"),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("chain", String(160), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    # where verification starts: 1 and the genesis, or the boundary kept when old entries were pruned
    Column("first_seq", BigInteger, nullable=False, server_default="1"),
    Column("first_prev", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("chain", String(160), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Column("kid", String(64), nullable=False),
    Column("signature", String(128), nullable=False),  # Ed25519, base64
)

audit_meta = Table(
    "audit_meta",
    metadata,
    Column("name", String(64), primary_key=True),  # chain_started_at: when the store began chaining
    Column("value", Text, nullable=False),
)

audit_keys = Table(
    "audit_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("public_pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
