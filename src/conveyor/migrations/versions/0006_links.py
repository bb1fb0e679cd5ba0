"""Table → queue links and the transactional outbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conveyor.db.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _id() -> sa.Column[int]:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "conveyor_links",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("table_name", sa.String(63), nullable=False),
        sa.Column("queue_id", sa.String(32), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("handler", sa.String(255), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["conveyor_queues.id"],
            name="fk_conveyor_links_queue_id_conveyor_queues",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_conveyor_links"),
        sa.UniqueConstraint("table_name", "queue_id", name="uq_conveyor_links_table_name_queue_id"),
    )
    op.create_table(
        "conveyor_outbox",
        _id(),
        sa.Column("queue_id", sa.String(32), nullable=False),
        sa.Column("table_name", sa.String(63), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("ordering_key", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("backend_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["conveyor_queues.id"],
            name="fk_conveyor_outbox_queue_id_conveyor_queues",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_conveyor_outbox"),
    )
    op.create_index(
        "ix_conveyor_outbox_status_next_attempt_at",
        "conveyor_outbox",
        ["status", "next_attempt_at", "id"],
    )
    op.create_index(
        "ix_conveyor_outbox_ordering_key_status_id",
        "conveyor_outbox",
        ["ordering_key", "status", "id"],
    )
    op.create_index(
        "ix_conveyor_outbox_table_name_record_id", "conveyor_outbox", ["table_name", "record_id"]
    )


def downgrade() -> None:
    op.drop_table("conveyor_outbox")
    op.drop_table("conveyor_links")
