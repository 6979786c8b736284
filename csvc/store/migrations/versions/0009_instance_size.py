"""An instance's size in memory (MiB) and cpu (cores) besides its capacity in
containers: ``instances.memory`` and ``instances.cpus`` (NULL: not known yet;
placement does not count that resource on the instance).

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("memory", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cpus", sa.Float(), nullable=True))


def downgrade():
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("cpus")
        batch.drop_column("memory")
