"""A Docker create's honoured options, kept as the client sent them
(validated): ``containers.docker_config`` (``{"Config": {...},
"HostConfig": {...}}``; NULL for containers created through ``/v1``).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade():
    with op.batch_alter_table("containers") as batch:
        batch.add_column(sa.Column("docker_config", sa.JSON, nullable=True))


def downgrade():
    with op.batch_alter_table("containers") as batch:
        batch.drop_column("docker_config")
