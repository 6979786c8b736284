"""Images belong to projects: which project pulled which image (by
reference and id) onto which instance (``project_images``).

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade():
    op.create_table(
        "project_images",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("instance_uuid", sa.String(36), primary_key=True),
        sa.Column("reference", sa.String(512), primary_key=True),
        sa.Column("image_id", sa.String(128), primary_key=True),
        sa.Column("pulled_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_project_images_image_id", "project_images", ["image_id"])


def downgrade():
    op.drop_index("ix_project_images_image_id", table_name="project_images")
    op.drop_table("project_images")
