"""Initial schema: signing keys, tokens, sessions, statements, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("private_pem", sa.Text, nullable=False),
        sa.Column("public_pem", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("created_by", sa.String(256), nullable=False),
    )
    op.create_index("ix_tokens_subject", "tokens", ["subject"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user", sa.String(256), nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("token_id", sa.String(64)),
        sa.Column("connection", sa.String(64), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("client_addr", sa.String(64), nullable=False),
        sa.Column("application_name", sa.String(256), nullable=False),
        sa.Column("gateway", sa.String(128), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("end_reason", sa.String(256)),
        sa.Column("bytes_from_client", sa.BigInteger, nullable=False),
        sa.Column("bytes_to_client", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_sessions_started_at", "sessions", ["started_at"])
    op.create_index("ix_sessions_user", "sessions", ["user"])
    op.create_table(
        "statements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(36), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.Text),
        sa.Column("param_count", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("command_tag", sa.String(64)),
        sa.Column("row_count", sa.BigInteger),
        sa.Column("sqlstate", sa.String(5)),
        sa.Column("error_message", sa.Text),
        sa.Column("duration_ms", sa.Float),
    )
    op.create_index("ix_statements_session_seq", "statements", ["session_id", "seq"], unique=True)
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(256)),
        sa.Column("connection", sa.String(64)),
        sa.Column("client_addr", sa.String(64)),
        sa.Column("session_id", sa.String(36)),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_events_at", "events", ["at"])


def downgrade() -> None:
    for table in ("events", "statements", "sessions", "tokens", "signing_keys"):
        op.drop_table(table)
