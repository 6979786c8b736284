"""Enrollment by certificate: when an instance's one-time enrollment token
was used (``enrolled_at``; NULL: not yet) and the SHA-256 of the client
certificate its agent registers with (``agent_cert_sha256``).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("enrolled_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("agent_cert_sha256", sa.String(64), nullable=True))


def downgrade():
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("agent_cert_sha256")
        batch.drop_column("enrolled_at")
