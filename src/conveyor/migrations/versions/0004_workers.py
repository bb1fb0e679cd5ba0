"""Worker registrations and heartbeats.

Revision ID: 0004
Revises: 0002 (re-point to 0003 once the ZStorage migration is merged)
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conveyor.db.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conveyor_workers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("handlers", sa.JSON(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("heartbeat_s", sa.Float(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("last_beat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.Column("processed", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conveyor_workers"),
    )
    op.create_index("ix_conveyor_workers_last_beat_at", "conveyor_workers", ["last_beat_at"])


def downgrade() -> None:
    op.drop_index("ix_conveyor_workers_last_beat_at", table_name="conveyor_workers")
    op.drop_table("conveyor_workers")
