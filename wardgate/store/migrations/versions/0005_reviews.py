"""Reviews: statements held for approval, and the reviewers' votes.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requester", sa.String(256), nullable=False),
        sa.Column("requester_groups", sa.Text, nullable=False),
        sa.Column("connection", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(36)),
        sa.Column("gateway", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("rule_reason", sa.Text, nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("redacted", sa.Text),
        sa.Column("param_count", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decided_by", sa.Text),
        sa.Column("decision_reason", sa.Text),
        sa.Column("executed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_reviews_status", "reviews", ["status"])
    op.create_index("ix_reviews_created_at", "reviews", ["created_at"])
    op.create_table(
        "review_votes",
        sa.Column("review_id", sa.String(16), sa.ForeignKey("reviews.id"), primary_key=True),
        sa.Column("reviewer", sa.String(256), primary_key=True),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("approve", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("review_votes")
    op.drop_index("ix_reviews_created_at", "reviews")
    op.drop_index("ix_reviews_status", "reviews")
    op.drop_table("reviews")
