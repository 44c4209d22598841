"""OIDC identities in the session record, and service accounts with hashed tokens.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("issuer", sa.String(512)))
        batch.add_column(sa.Column("idp_subject", sa.String(256)))
    op.create_table(
        "service_accounts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.Column("disabled_by", sa.String(256)),
    )
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("token_hash", sa.String(64)))
        batch.add_column(sa.Column("account", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("account")
        batch.drop_column("token_hash")
    op.drop_table("service_accounts")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("idp_subject")
        batch.drop_column("issuer")
