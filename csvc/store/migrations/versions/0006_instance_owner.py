"""Instances the service creates through a provider belong to one project:
``instances.project_id`` (NULL: not owned; shared when ``shared`` says so).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("project_id", sa.String(64), nullable=True))
        batch.create_index("ix_instances_project_id", ["project_id"])


def downgrade():
    with op.batch_alter_table("instances") as batch:
        batch.drop_index("ix_instances_project_id")
        batch.drop_column("project_id")
