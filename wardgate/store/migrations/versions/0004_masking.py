"""Masking: which rules applied to a session (and which its groups are exempt from); what each statement masked.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("masking", sa.Text))
    with op.batch_alter_table("statements") as batch:
        batch.add_column(sa.Column("masked", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("statements") as batch:
        batch.drop_column("masked")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("masking")
