"""Idempotency keys belong to an API key, a queue and an endpoint, and to one body.

The table is made again with its new key: (API key, queue, endpoint, key), and the body's
fingerprint. Keys taken before this version are forgotten (they are kept a day at most,
to answer retries; a retry of one of those publishes again, under a new message id).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("conveyor_idempotency_keys")
    op.create_table(
        "conveyor_idempotency_keys",
        sa.Column("api_key_id", sa.String(32), nullable=False),
        sa.Column("queue_id", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("message_ids", sa.JSON(), nullable=True),
        sa.Column("released_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["conveyor_queues.id"],
            name="fk_conveyor_idempotency_keys_queue_id_conveyor_queues",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "api_key_id", "queue_id", "endpoint", "key", name="pk_conveyor_idempotency_keys"
        ),
    )
    op.create_index(
        "ix_conveyor_idempotency_keys_created_at", "conveyor_idempotency_keys", ["created_at"]
    )


def downgrade() -> None:
    op.drop_table("conveyor_idempotency_keys")
    op.create_table(
        "conveyor_idempotency_keys",
        sa.Column("queue_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("message_ids", sa.JSON(), nullable=True),
        sa.Column("released_at", sa.BigInteger(), nullable=True),
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
