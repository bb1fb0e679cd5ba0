"""Apply the platform's Alembic migrations, safely from several processes at once."""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from conveyor.db.engine import Database

VERSION_TABLE = "conveyor_alembic_version"
# Any constant works; it only has to be the same in every Conveyor process.
_MIGRATION_LOCK_ID = 0x636F6E76


@dataclass(frozen=True)
class MigrationResult:
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "conveyor:migrations")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _upgrade(connection: Connection) -> MigrationResult:
    before = _current(connection)
    command.upgrade(alembic_config(connection), "head")
    return MigrationResult(before, _current(connection))


async def migrate(db: Database) -> MigrationResult:
    """Bring the database to the newest revision (a no-op when it is there already)."""
    async with db.write() as conn:
        if db.dialect == "postgresql":
            # Serialise concurrent starters; SQLite's BEGIN IMMEDIATE already does.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
        return await conn.run_sync(_upgrade)


async def current_revision(db: Database) -> str | None:
    async with db.read() as conn:
        return await conn.run_sync(_current)
