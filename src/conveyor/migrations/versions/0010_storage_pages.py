"""Custom table pages, and the display field of each table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conveyor.db.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conveyor_storage_tables") as batch:
        batch.add_column(sa.Column("display_field", sa.String(63), nullable=True))
    op.create_table(
        "conveyor_storage_pages",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("table_id", sa.String(32), nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["table_id"],
            ["conveyor_storage_tables.id"],
            name="fk_conveyor_storage_pages_table_id_conveyor_storage_tables",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_conveyor_storage_pages"),
        sa.UniqueConstraint("table_id", "slug", name="uq_conveyor_storage_pages_table_id_slug"),
    )


def downgrade() -> None:
    op.drop_table("conveyor_storage_pages")
    with op.batch_alter_table("conveyor_storage_tables") as batch:
        batch.drop_column("display_field")
