"""Session replay: each statement keeps the first rows of its result as the client received them (masked).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statements") as batch:
        batch.add_column(sa.Column("result_sample", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("statements") as batch:
        batch.drop_column("result_sample")
