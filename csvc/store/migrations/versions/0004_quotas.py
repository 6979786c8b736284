"""Per-project quotas: containers, memory (MiB), cpu, attach sessions.  A NULL
limit is the service's default (config); -1 is unlimited.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade():
    op.create_table(
        "quotas",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("containers", sa.Integer),
        sa.Column("memory", sa.Integer),
        sa.Column("cpu", sa.Integer),
        sa.Column("attach_sessions", sa.Integer),
    )


def downgrade():
    op.drop_table("quotas")
