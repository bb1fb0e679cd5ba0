"""Idempotency keys keep their message ids across failed attempts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conveyor_idempotency_keys", sa.Column("message_ids", sa.JSON(), nullable=True))
    op.add_column(
        "conveyor_idempotency_keys", sa.Column("released_at", sa.BigInteger(), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("conveyor_idempotency_keys") as batch:
        batch.drop_column("released_at")
        batch.drop_column("message_ids")
