"""What runs an instance, as its provider names it: ``instances.server_id``
(a Nova server's id; NULL for local agents and an operator's hosts).

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("server_id", sa.String(64), nullable=True))


def downgrade():
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("server_id")
