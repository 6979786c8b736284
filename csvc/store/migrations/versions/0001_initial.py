"""The initial schema: tokens, instances, containers, output chunks.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("enroll_token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hostname", sa.String(255)),
        sa.Column("engine", sa.String(32)),
        sa.Column("shared", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_seen_at", sa.DateTime),
    )
    op.create_table(
        "containers",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("user_id", sa.String(64)),
        sa.Column("image", sa.String(512), nullable=False),
        sa.Column("command", sa.JSON),
        sa.Column("environment", sa.JSON),
        sa.Column("workdir", sa.String(4096)),
        sa.Column("labels", sa.JSON),
        sa.Column("tty", sa.Boolean, nullable=False),
        sa.Column("interactive", sa.Boolean, nullable=False),
        sa.Column("memory", sa.Integer),
        sa.Column("cpu", sa.Float),
        sa.Column("auto_remove", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("exit_code", sa.Integer),
        sa.Column("instance_uuid", sa.String(36), index=True),
        sa.Column("engine_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("log_cursor", sa.String(128), nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_containers_project_name"),
    )
    op.create_table(
        "output_chunks",
        sa.Column("container_uuid", sa.String(36), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("stream", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade():
    for table in ("output_chunks", "containers", "instances", "tokens"):
        op.drop_table(table)
