"""A project's limit on networks: ``quotas.networks`` (NULL: the service's
default).

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade():
    with op.batch_alter_table("quotas") as batch:
        batch.add_column(sa.Column("networks", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("quotas") as batch:
        batch.drop_column("networks")
