"""Just-in-time access: review requests of kind access, and the grants they become at first use.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="statement"))
        batch.add_column(sa.Column("access", sa.Text))
    op.create_table(
        "grants",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("review_id", sa.String(16), sa.ForeignKey("reviews.id"), nullable=False, unique=True),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("connection", sa.String(64), nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("approved_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.String(256)),
        sa.Column("revoke_reason", sa.Text),
    )
    op.create_index("ix_grants_subject_connection", "grants", ["subject", "connection"])


def downgrade() -> None:
    op.drop_index("ix_grants_subject_connection", "grants")
    op.drop_table("grants")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("access")
        batch.drop_column("kind")
