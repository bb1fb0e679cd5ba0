from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from conveyor.db import Database
from conveyor.db.migrate import head_revision, migrate
from conveyor.db.tables import metadata
from conveyor.platform import Platform


async def test_migrations_reach_head_and_match_the_table_definitions(platform: Platform) -> None:
    db = platform.db

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(
            sync_conn, opts={"version_table": "conveyor_alembic_version", "compare_type": True}
        )
        return compare_metadata(context, metadata)

    async with db.read() as conn:
        assert await conn.run_sync(diff) == []
    again = await migrate(db)
    assert not again.changed
    assert again.after == head_revision()


async def test_concurrent_migrations_are_serialised(settings) -> None:  # type: ignore[no-untyped-def]
    databases = [Database.from_settings(settings) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(db) for db in databases))
    finally:
        for db in databases:
            await db.close()
    assert sum(r.changed for r in results) == 1
    assert {r.after for r in results} == {head_revision()}


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(platform: Platform) -> None:
    if platform.db.dialect != "sqlite":
        assert platform.db.dialect == "postgresql"
        return
    async with platform.db.read() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 30_000
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1


async def test_sqlite_write_transactions_take_the_lock_up_front(platform: Platform) -> None:
    """Two writers that both read first never fail with SQLITE_BUSY_SNAPSHOT."""

    async def read_then_write(name: str) -> None:
        async with platform.db.write() as conn:
            await conn.execute(text("SELECT count(*) FROM conveyor_users"))
            await asyncio.sleep(0.01)
            await conn.execute(
                text(
                    "INSERT INTO conveyor_users (username, password_hash, is_active, created_at)"
                    " VALUES (:n, 'x', true, CURRENT_TIMESTAMP)"
                ),
                {"n": name},
            )

    await asyncio.gather(*(read_then_write(f"user{i}") for i in range(10)))
    async with platform.db.read() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM conveyor_users"))).scalar()
    assert count == 10


async def test_ping_fails_cleanly_when_the_database_is_unreachable() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/nothing")
    try:
        assert await db.ping() is False
    finally:
        await db.close()


async def test_writes_count_as_in_flight_until_they_end_committed_or_not(
    platform: Platform,
) -> None:
    # A database of its own: the platform's relay may be writing meanwhile.
    db = Database(platform.settings.database_url, schema=platform.settings.database_schema)
    async with db.write() as conn:
        await conn.execute(text("SELECT 1"))
        assert len(db.writes) == 1
    assert len(db.writes) == 0
    with pytest.raises(RuntimeError):
        async with db.write():
            raise RuntimeError("rolled back")
    assert len(db.writes) == 0
    await db.close()
