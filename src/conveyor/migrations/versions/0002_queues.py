"""Queue registry, the embedded queue and idempotency keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conveyor.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conveyor_queues",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("username", sa.String(255), nullable=True),
        sa.Column("password_encrypted", sa.Text(), nullable=True),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conveyor_queues"),
        sa.UniqueConstraint("name", name="uq_conveyor_queues_name"),
    )
    op.create_table(
        "conveyor_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("queue_id", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.Column("ordering_key", sa.String(255), nullable=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.BigInteger(), nullable=False),
        sa.Column("visible_at", sa.BigInteger(), nullable=False),
        sa.Column("lease_id", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dead_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["conveyor_queues.id"],
            name="fk_conveyor_messages_queue_id_conveyor_queues",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_conveyor_messages"),
    )
    op.create_index(
        "ix_conveyor_messages_claim",
        "conveyor_messages",
        ["queue_id", "state", "visible_at", "id"],
    )
    op.create_table(
        "conveyor_idempotency_keys",
        sa.Column("queue_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["conveyor_queues.id"],
            name="fk_conveyor_idempotency_keys_queue_id_conveyor_queues",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("queue_id", "key", name="pk_conveyor_idempotency_keys"),
    )
    op.create_index(
        "ix_conveyor_idempotency_keys_created_at", "conveyor_idempotency_keys", ["created_at"]
    )


def downgrade() -> None:
    op.drop_table("conveyor_idempotency_keys")
    op.drop_index("ix_conveyor_messages_claim", table_name="conveyor_messages")
    op.drop_table("conveyor_messages")
    op.drop_table("conveyor_queues")
