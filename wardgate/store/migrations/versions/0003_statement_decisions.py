"""Statement decisions: the policy's action, the rule that decided, and why.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statements") as batch:
        batch.add_column(sa.Column("decision", sa.String(16)))
        batch.add_column(sa.Column("rule", sa.String(64)))
        batch.add_column(sa.Column("reason", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("statements") as batch:
        batch.drop_column("reason")
        batch.drop_column("rule")
        batch.drop_column("decision")
