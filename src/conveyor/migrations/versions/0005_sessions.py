"""Back-office sessions, login throttling, and the last publish time of each queue.

Revision ID: 0005
Revises: 0002 (re-point to 0004 when the ZStorage and link migrations land)
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conveyor.db.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conveyor_sessions",
        sa.Column("id_sha256", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["conveyor_users.id"],
            name="fk_conveyor_sessions_user_id_conveyor_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_sha256", name="pk_conveyor_sessions"),
    )
    op.create_index("ix_conveyor_sessions_user_id", "conveyor_sessions", ["user_id"])
    op.create_index("ix_conveyor_sessions_last_seen_at", "conveyor_sessions", ["last_seen_at"])
    op.create_table(
        "conveyor_login_failures",
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key_sha256", name="pk_conveyor_login_failures"),
    )
    op.add_column("conveyor_queues", sa.Column("last_published_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conveyor_queues") as batch:
        batch.drop_column("last_published_at")
    op.drop_table("conveyor_login_failures")
    op.drop_index("ix_conveyor_sessions_last_seen_at", table_name="conveyor_sessions")
    op.drop_index("ix_conveyor_sessions_user_id", table_name="conveyor_sessions")
    op.drop_table("conveyor_sessions")
