"""Is the database's schema the newest? Answered without importing Alembic.

Most commands find the schema up to date; reading the version row and the names of the
migration files takes milliseconds, where loading Alembic takes a good part of a second.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from conveyor.db.engine import Database

_SELECT_VERSION = text("SELECT version_num FROM conveyor_alembic_version")
VERSIONS = Path(__file__).parents[1] / "migrations" / "versions"


def newest_revision() -> str:
    """The head revision: migrations are numbered, and each file starts with its number."""
    return max(path.name.partition("_")[0] for path in VERSIONS.glob("[0-9]*_*.py"))


async def stored_revision(db: Database) -> str | None:
    """The database's revision; None when it has none (a new database)."""
    try:
        async with db.read() as conn:
            row = (await conn.execute(_SELECT_VERSION)).first()
    except DBAPIError:
        return None
    return str(row[0]) if row is not None else None


async def ensure_newest(db: Database) -> None:
    """Migrate the database unless its schema is the newest already."""
    if await stored_revision(db) == newest_revision():
        return
    from conveyor.db.migrate import migrate  # Alembic, only when there is work

    await migrate(db)
