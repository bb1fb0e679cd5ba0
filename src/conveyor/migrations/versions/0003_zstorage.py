"""ZStorage: the catalogue of user tables, their fields and validation rules.

The user tables themselves are created at run time (`conveyor.storage.schema`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conveyor.db.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conveyor_storage_tables",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("sql_name", sa.String(63), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conveyor_storage_tables"),
        sa.UniqueConstraint("name", name="uq_conveyor_storage_tables_name"),
        sa.UniqueConstraint("sql_name", name="uq_conveyor_storage_tables_sql_name"),
    )
    for child, columns in (
        (
            "conveyor_storage_fields",
            [
                sa.Column("type", sa.String(16), nullable=False),
                sa.Column("label", sa.String(200), nullable=False),
                sa.Column("options", sa.JSON(), nullable=False),
            ],
        ),
        (
            "conveyor_storage_rules",
            [
                sa.Column("expression", sa.Text(), nullable=False),
                sa.Column("message", sa.Text(), nullable=False),
            ],
        ),
    ):
        op.create_table(
            child,
            sa.Column("table_id", sa.String(32), nullable=False),
            sa.Column("name", sa.String(63), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            *columns,
            sa.ForeignKeyConstraint(
                ["table_id"],
                ["conveyor_storage_tables.id"],
                name=f"fk_{child}_table_id_conveyor_storage_tables",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("table_id", "name", name=f"pk_{child}"),
        )


def downgrade() -> None:
    op.drop_table("conveyor_storage_rules")
    op.drop_table("conveyor_storage_fields")
    op.drop_table("conveyor_storage_tables")
