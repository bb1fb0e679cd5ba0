"""`pipelined()` on PostgreSQL: sent straight on the asyncpg connection of the
transaction, and otherwise exactly what `conn.execute` would do (same transaction, same
errors, a lost connection invalidated)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from conveyor.db import Database, pipelined
from conveyor.db.types import UTCDateTime, utcnow
from tests import services
from tests.conftest import postgres_schema
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

metadata = MetaData()
T = Table(
    "t",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("v", String, unique=True),
    Column("n", BigInteger),
    Column("doc", JSON),
    Column("at", UTCDateTime),
)
DEFAULTED = Table(
    "defaulted",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String, default="plain"),
)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with postgres_schema() as schema:
        database = Database(services.POSTGRES_URL, schema=schema)
        async with database.write() as conn:
            await conn.run_sync(metadata.create_all)
        yield database
        await database.engine.dispose()


@pytest.fixture
def executed(db: Database) -> list[str]:
    """The statements that went through SQLAlchemy's execution."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    return seen


async def values(db: Database) -> list[str]:
    async with db.read() as conn:
        return list((await conn.execute(select(T.c.v).order_by(T.c.id))).scalars())


async def test_a_statement_runs_at_once_in_the_transaction_without_sqlalchemys_execution(
    db: Database, executed: list[str]
) -> None:
    at = utcnow()
    async with db.write() as conn:
        await conn.execute(text("SELECT 1"))
        one = await pipelined(
            conn,
            insert(T).returning(T.c.id, T.c.v, T.c.n),
            {"v": "a", "n": 2**40, "doc": {"k": [1, "x"]}, "at": at},
        )
        assert one.rows == [(1, "a", 2**40)]  # at once, not at the commit
        seen = await conn.execute(select(T.c.v))
        assert seen.scalars().all() == ["a"]
    assert [s for s in executed if "INSERT" in s] == []
    async with db.read() as conn:
        row = (await conn.execute(select(T.c.doc, T.c.at))).one()
    assert row == ({"k": [1, "x"]}, at)  # the columns' bind processors ran


async def test_as_the_first_statement_it_begins_the_transaction(db: Database) -> None:
    class Abandon(Exception):
        pass

    async def abandoned() -> None:
        async with db.write() as conn:
            await pipelined(conn, insert(T), {"v": "gone"})
            raise Abandon

    with pytest.raises(Abandon):
        await abandoned()
    assert await values(db) == []
    async with db.write() as conn:
        await pipelined(conn, insert(T), {"v": "kept"})
    assert await values(db) == ["kept"]


async def test_many_rows_in_one_statement_and_with_returning(
    db: Database, executed: list[str]
) -> None:
    async with db.write() as conn:
        many = await pipelined(conn, insert(T), [{"v": "a"}, {"v": "b"}, {"v": "c"}])
        returned = await pipelined(conn, insert(T).returning(T.c.v), [{"v": "d"}, {"v": "e"}])
        renamed = await pipelined(
            conn,
            update(T).where(T.c.v == bindparam("old")).values(v=bindparam("new")),
            [{"old": "a", "new": "A"}, {"old": "c", "new": "C"}],
        )
    assert (many.rows, renamed.rows) == ([], [])
    # Rows back from many: SQLAlchemy's execution does that, and gives them all.
    assert sorted(returned.rows or []) == [("d",), ("e",)]
    inserts = [s for s in executed if "INSERT" in s]
    assert len(inserts) == 1
    assert "RETURNING t.v" in inserts[0]
    assert await values(db) == ["A", "b", "C", "d", "e"]


async def test_rows_returned_in_parameter_order_take_sqlalchemys_path(db: Database) -> None:
    # Compiled for many rows, such an INSERT is a template SQLAlchemy rewrites.
    statement = insert(T).returning(T.c.v, sort_by_parameter_order=True)
    async with db.write() as conn:
        one = await pipelined(conn, statement, {"v": "a"})
        many = await pipelined(conn, statement, [{"v": "b"}, {"v": "c"}])
    assert (one.rows, many.rows) == ([("a",)], [("b",), ("c",)])


async def test_a_value_its_type_refuses_is_a_statement_error(db: Database) -> None:
    async def naive_time() -> None:
        async with db.write() as conn:
            await pipelined(conn, insert(T), {"v": "a", "at": datetime(2026, 1, 1)})

    with pytest.raises(StatementError, match="cannot bind"):
        await naive_time()
    assert await values(db) == []


async def test_python_side_defaults_take_sqlalchemys_path(db: Database) -> None:
    async with db.write() as conn:
        await pipelined(conn, insert(DEFAULTED), {})
    async with db.read() as conn:
        assert (await conn.execute(select(DEFAULTED.c.kind))).scalars().all() == ["plain"]


async def test_errors_are_sqlalchemys_and_nothing_of_the_transaction_is_kept(
    db: Database,
) -> None:
    async with db.write() as conn:
        await pipelined(conn, insert(T), {"v": "x"})

    async def duplicate(rows: dict[str, str] | list[dict[str, str]]) -> None:
        async with db.write() as conn:
            await pipelined(conn, insert(T), {"v": "y"})
            await pipelined(conn, insert(T), rows)

    with pytest.raises(IntegrityError, match="unique") as raised:
        await duplicate({"v": "x"})
    assert isinstance(raised.value.orig, Exception)
    assert "INSERT INTO t" in str(raised.value.statement)
    with pytest.raises(IntegrityError):
        await duplicate([{"v": "z"}, {"v": "x"}])
    assert await values(db) == ["x"]
    async with db.write() as conn:  # the pooled connection is fine
        await pipelined(conn, insert(T), {"v": "after"})
    assert await values(db) == ["x", "after"]


async def test_a_lost_connection_is_invalidated_and_the_next_transaction_gets_a_new_one(
    db: Database,
) -> None:
    failure: BaseException | None = None
    killed: list[int] = []

    async def cut() -> None:
        nonlocal failure
        async with db.write() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            killed.append(pid)
            killer = await asyncpg.connect(services.POSTGRES_URL)
            try:
                await killer.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await killer.close()
            try:
                await pipelined(conn, insert(T), {"v": "lost"})
            except BaseException as exc:
                failure = exc
                raise

    with pytest.raises(DBAPIError):
        await cut()
    assert isinstance(failure, DBAPIError), repr(failure)
    assert failure.connection_invalidated
    async with db.write() as conn:
        assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() not in killed
        await pipelined(conn, insert(T), {"v": "next"})
    assert await values(db) == ["next"]


async def test_a_write_cancelled_while_its_begin_is_answered_leaves_no_connection_behind() -> None:
    """Cancelled with BEGIN on its way, the connection may be in a transaction the driver
    does not know of: it must not go back to the pool (the next write there would run
    in that transaction and never commit)."""
    async with postgres_schema() as schema, TcpProxy.to(services.POSTGRES_URL, 5432) as proxy:
        db = Database(proxy.url, schema=schema, pool_size=1)
        try:
            async with db.write() as conn:
                await conn.run_sync(metadata.create_all)

            async def first() -> None:
                async with db.write() as conn:
                    await pipelined(conn, insert(T), {"v": "cancelled"})

            proxy.delay_s = 0.3
            write = asyncio.create_task(first())
            await asyncio.sleep(0.1)  # BEGIN is on its way; its answer comes later
            write.cancel()
            with pytest.raises(asyncio.CancelledError):
                await write
            proxy.delay_s = 0
            async with db.write() as conn:
                await pipelined(conn, insert(T), {"v": "next"})
            other = await asyncpg.connect(services.POSTGRES_URL)
            try:
                seen = await other.fetch(f'SELECT v FROM "{schema}".t')
            finally:
                await other.close()
            assert [row["v"] for row in seen] == ["next"]
        finally:
            await db.engine.dispose()
