"""Bounded output: each container's retention counters (``containers.output_first``,
``output_bytes``, ``output_dropped``) and a project's output quota
(``quotas.output``, MiB; NULL: the service's default).

Output already stored as rows is counted here; output in files is counted
by the start (``Store.prepare_output``), which reads their indexes.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade():
    with op.batch_alter_table("containers") as batch:
        batch.add_column(sa.Column("output_first", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("output_bytes", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("output_dropped", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("quotas") as batch:
        batch.add_column(sa.Column("output", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE containers SET output_bytes = (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM output_chunks "
        "WHERE output_chunks.container_uuid = containers.uuid)"
    )


def downgrade():
    with op.batch_alter_table("quotas") as batch:
        batch.drop_column("output")
    with op.batch_alter_table("containers") as batch:
        batch.drop_column("output_dropped")
        batch.drop_column("output_bytes")
        batch.drop_column("output_first")
