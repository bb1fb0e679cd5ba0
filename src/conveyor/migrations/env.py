"""Alembic environment: Conveyor always hands over an open connection."""

from __future__ import annotations

from alembic import context

from conveyor.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `conveyor migrate`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="conveyor_alembic_version",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
