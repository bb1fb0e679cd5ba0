"""The outbox by status, newest first: an index on (status, id).

The outbox view lists one status's rows newest first; with a million sent rows and a
few failed ones, the failed rows were found by reading every row backwards.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_conveyor_outbox_status_id", "conveyor_outbox", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_conveyor_outbox_status_id", table_name="conveyor_outbox")
