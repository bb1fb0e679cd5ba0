"""The SQLite driver (conveyor.db.sqlite_driver): one thread hop per statement, none for a
pipelined one, and otherwise what SQLAlchemy's aiosqlite adapter gives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    column,
    insert,
    select,
    table,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from conveyor.db import Database, pipelined
from conveyor.db.sqlite_driver import BEGIN_WRITE, OneHopConnection, Pipelined, _execute_after

T = table("t", column("id"), column("v"))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/driver.db")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield database
    await database.engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of each function aiosqlite runs on a connection's thread."""
    seen: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_a_statement_is_one_hop_to_the_connection_thread(
    db: Database, hops: list[str]
) -> None:
    async with db.write() as conn:
        assert hops == []  # BEGIN IMMEDIATE waits for the first statement
        result = await conn.execute(text("INSERT INTO t (v) VALUES ('a') RETURNING id, v"))
        assert result.all() == [(1, "a")]
        assert hops == ["_execute_after"]
        hops.clear()
    assert hops == ["_commit_after"]
    hops.clear()
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
    assert hops == ["_execute_after", "_commit_after"]


async def test_pipelined_statements_ride_with_the_commit(db: Database, hops: list[str]) -> None:
    async with db.write() as conn:
        first = await conn.execute(text("INSERT INTO t (v) VALUES ('a') RETURNING id"))
        assert first.scalar_one() == 1
        returned = await pipelined(conn, insert(T).values(v="b").returning(T.c.id, T.c.v))
        many = await pipelined(conn, insert(T), [{"v": "c"}, {"v": "d"}])
        assert (returned.rows, many.rows) == (None, None)  # not run yet
        assert hops == ["_execute_after"]
    assert hops == ["_execute_after", "_commit_after"]
    assert (returned.rows, many.rows) == ([(2, "b")], [])
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
    assert rows == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]


async def test_a_pipelined_statement_runs_before_the_next_one(db: Database) -> None:
    async with db.write() as conn:
        await pipelined(conn, insert(T).values(v="a"))
        seen = await conn.execute(text("SELECT v FROM t"))
        assert seen.scalars().all() == ["a"]
        await pipelined(conn, insert(T).values(v="b"))
        streamed = await conn.stream(text("SELECT v FROM t ORDER BY id"))
        assert [row.v async for row in streamed] == ["a", "b"]


async def test_a_failing_pipelined_statement_fails_the_commit_and_keeps_nothing(
    db: Database,
) -> None:
    async def duplicate() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
            await pipelined(conn, insert(T).values(v="x"))
            await pipelined(conn, insert(T).values(v="y"))

    with pytest.raises(IntegrityError, match="UNIQUE"):
        await duplicate()
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_a_rolled_back_transaction_drops_its_pipelined_statements(db: Database) -> None:
    class Abandon(Exception):
        pass

    async def abandoned() -> None:
        async with db.write() as conn:
            await pipelined(conn, insert(T).values(v="gone"))
            raise Abandon

    with pytest.raises(Abandon):
        await abandoned()
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('kept')"))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == ["kept"]


async def test_results_row_counts_and_row_ids(db: Database) -> None:
    async with db.write() as conn:
        many = await conn.execute(
            text("INSERT INTO t (v) VALUES (:v)"), [{"v": "a"}, {"v": "b"}, {"v": "c"}]
        )
        assert many.rowcount == 3
        one = await conn.execute(text("INSERT INTO t (v) VALUES ('d')"))
        assert one.lastrowid == 4
        updated = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id > 2"))
        assert updated.rowcount == 2
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
        assert rows == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!")]
        assert (await conn.execute(text("SELECT v FROM t WHERE id = 9"))).first() is None
    async with db.engine.connect() as conn:
        streamed = await conn.stream(text("SELECT v FROM t ORDER BY id"))
        assert [row.v async for row in streamed] == ["a", "b", "c!", "d!"]


async def test_errors_are_sqlalchemys_and_roll_the_transaction_back(db: Database) -> None:
    async def twice() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
            await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))

    async def unknown_column() -> None:
        async with db.read() as conn:
            await conn.execute(text("SELECT nope FROM t"))

    with pytest.raises(IntegrityError):
        await twice()
    with pytest.raises(OperationalError, match="no such column"):
        await unknown_column()
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_pipelined_statements_keep_column_types_and_python_defaults(db: Database) -> None:
    metadata = MetaData()
    typed = Table(
        "typed",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("doc", JSON),
        Column("kind", String, default="plain"),
    )
    async with db.write() as conn:
        await conn.run_sync(metadata.create_all)
    async with db.write() as conn:
        await pipelined(conn, insert(typed), {"doc": {"a": [1, 2]}})
        await pipelined(conn, insert(typed), [{"doc": None, "kind": "given"}])
    async with db.read() as conn:
        rows = (await conn.execute(select(typed.c.doc, typed.c.kind).order_by("id"))).all()
    assert rows == [({"a": [1, 2]}, "plain"), (None, "given")]


async def test_pipelined_statements_bind_the_values_they_hold_and_refuse_a_missing_one(
    db: Database,
) -> None:
    stamps = iter(["first", "second"])
    stamped = (
        update(T)
        .where(T.c.id == bindparam("row_id"))
        .values(v=bindparam("stamp", callable_=lambda: next(stamps)))
    )
    async with db.write() as conn:
        await pipelined(conn, insert(T).values(v="held"))
        await pipelined(conn, insert(T).values(v="other"))
        await pipelined(conn, stamped, [{"row_id": 1}, {"row_id": 2}])  # a value per row
    async with db.read() as conn:
        rows = (await conn.execute(select(T.c.id, T.c.v).order_by(T.c.id))).all()
    assert rows == [(1, "first"), (2, "second")]
    with pytest.raises(StatementError, match="A value is required for bind parameter 'row_id'"):
        async with db.write() as conn:
            await pipelined(conn, update(T).where(T.c.id == bindparam("row_id")).values(v="x"))


async def test_writers_take_turns_and_a_failed_or_abandoned_one_gives_its_turn_back(
    db: Database,
) -> None:
    class Abandon(Exception):
        pass

    async def failing() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
            await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))

    async def abandoned() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('y')"))
            raise Abandon

    async def cancelled() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('z')"))
            await asyncio.sleep(3600)

    async def writer(n: int) -> None:
        for i in range(10):
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{n}.{i}"})

    with pytest.raises(IntegrityError):
        await failing()
    with pytest.raises(Abandon):
        await abandoned()
    task = asyncio.create_task(cancelled())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(10):  # a turn not given back would hang here
        await asyncio.gather(*(writer(n) for n in range(8)))
    async with db.read() as conn:
        values = (await conn.execute(text("SELECT v FROM t"))).scalars().all()
    assert sorted(values) == sorted(f"{n}.{i}" for n in range(8) for i in range(10))


async def test_a_writer_waits_its_turn_for_the_busy_timeout_and_no_longer(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite:///{tmp_path}/slow.db", sqlite_busy_timeout_ms=300)
    try:
        async with database.write() as conn:
            await conn.execute(text("CREATE TABLE t (v TEXT)"))
        holding = asyncio.Event()
        done = asyncio.Event()

        async def holder() -> None:
            async with database.write() as conn:
                await conn.execute(text("INSERT INTO t VALUES ('held')"))
                holding.set()
                await done.wait()

        task = asyncio.create_task(holder())
        await holding.wait()
        with pytest.raises(OperationalError, match="locked"):
            async with database.write() as conn:
                await conn.execute(text("INSERT INTO t VALUES ('late')"))
        done.set()
        await task
        async with database.read() as conn:
            assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == ["held"]
    finally:
        await database.engine.dispose()


async def test_a_writer_cancelled_while_waiting_for_its_turn_leaves_nothing_behind(
    db: Database,
) -> None:
    holding, done = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('held')"))
            holding.set()
            await done.wait()

    async def waiter() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('cancelled')"))

    first = asyncio.create_task(holder())
    await holding.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0.2)  # its first statement waits for the turn on its thread
    second.cancel()
    async with asyncio.timeout(2):  # not for the holder, nor for the busy timeout
        with pytest.raises(asyncio.CancelledError):
            await second
    done.set()
    await first
    # Had the cancelled statement gone on waiting on its thread, it would have taken the
    # turn once the holder was done and kept it: the writes below would time out.
    async with asyncio.timeout(10):
        for i in range(20):
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"after{i}"})
    async with db.read() as conn:
        values = (await conn.execute(text("SELECT v FROM t"))).scalars().all()
    assert sorted(values) == sorted(["held", *(f"after{i}" for i in range(20))])


@pytest.mark.parametrize("terminate", ["force", "graceful"])
async def test_a_terminated_connection_gives_back_the_turn_its_last_hop_took(
    db: Database, terminate: str
) -> None:
    """SQLAlchemy terminates a connection whose caller was cancelled: it closes it
    through aiosqlite (graceful), or only queues the close (force; the garbage collector
    or a close that failed). A hop still queued before the close may yet begin a write
    and take the turn: the turn must come back with the close, on the connection's
    thread."""
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: OneHopConnection = raw.dbapi_connection  # type: ignore[assignment]
        # The connection's thread is busy, and a write's first hop waits behind that.
        busy = asyncio.create_task(driver._connection._execute(time.sleep, 0.3))  # type: ignore[attr-defined]
        begin = [(BEGIN_WRITE, None, False, Pipelined())]
        write = asyncio.create_task(driver.hop(_execute_after, begin, "SELECT 1", None))
        await asyncio.sleep(0.05)
        if terminate == "force":
            driver._terminate_force_close()
            await asyncio.gather(busy, write, return_exceptions=True)
        else:  # SQLAlchemy's invalidate closes it through aiosqlite
            await asyncio.gather(busy, write, conn.invalidate(), return_exceptions=True)
        await asyncio.to_thread(driver._connection._thread.join, 5)  # type: ignore[attr-defined]
        if terminate == "force":
            await conn.invalidate()  # the pool lets go of it
    async with asyncio.timeout(5):  # a turn kept by the closed connection: 30 s
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('after')"))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == ["after"]
