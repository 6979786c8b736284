"""What the Docker API needs: entrypoint, StdinOnce, --rm, and when each
output chunk arrived (for logs since/until/timestamps).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    with op.batch_alter_table("containers") as batch:
        batch.add_column(sa.Column("entrypoint", sa.JSON))
        batch.add_column(sa.Column("stdin_once", sa.Boolean))
        batch.add_column(sa.Column("remove_on_exit", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("output_chunks") as batch:
        batch.add_column(sa.Column("at", sa.Float))


def downgrade():
    with op.batch_alter_table("output_chunks") as batch:
        batch.drop_column("at")
    with op.batch_alter_table("containers") as batch:
        batch.drop_column("remove_on_exit")
        batch.drop_column("stdin_once")
        batch.drop_column("entrypoint")
