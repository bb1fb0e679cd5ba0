"""Back-office users get a role: admin (everything) or operator (no API keys, no users).

Users made before this version keep every power they had: they become admins.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conveyor_users") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="admin"))


def downgrade() -> None:
    with op.batch_alter_table("conveyor_users") as batch:
        batch.drop_column("role")
