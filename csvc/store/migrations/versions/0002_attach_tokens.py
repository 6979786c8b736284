"""One-time attach tokens, for clients that cannot set headers (browsers).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.create_table(
        "attach_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("container_uuid", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64)),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
    )


def downgrade():
    op.drop_table("attach_tokens")
