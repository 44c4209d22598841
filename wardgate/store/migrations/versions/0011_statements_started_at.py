"""Statements by time: export, the evidence report and retention all read statements by ``started_at``.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_statements_started_at", "statements", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_statements_started_at", "statements")
