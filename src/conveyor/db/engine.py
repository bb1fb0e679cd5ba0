"""The database engine, for SQLite (the embedded default) and PostgreSQL.

SQLite gets WAL mode, a busy timeout and `BEGIN IMMEDIATE` for write transactions: a
deferred transaction that reads and then writes fails with SQLITE_BUSY_SNAPSHOT when
another process wrote in between, and SQLite never retries that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import URL, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from conveyor.config import Settings
from conveyor.db.in_flight import WritesInFlight
from conveyor.db.sqlite_driver import (
    BEGIN_WRITE,
    OneHopConnection,
    OneHopDBAPI,
    Pipelined,
    WriterLock,
)
from conveyor.exceptions import ConfigurationError

Dialect = Literal["sqlite", "postgresql"]
_AFTER_COMMIT = "conveyor_after_commit"


def after_commit(conn: AsyncConnection, callback: Callable[[], None]) -> None:
    """Run `callback` when the `Database.write()` transaction of `conn` commits."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(callback)


_DRIVERS: dict[str, Dialect] = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite",
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "postgresql+psycopg": "postgresql",
    "postgresql+psycopg2": "postgresql",
    "postgresql+asyncpg": "postgresql",
}
_ASYNC_DRIVER: dict[Dialect, str] = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
}


def async_url(url: str) -> URL:
    """The URL a user wrote, with the async driver Conveyor uses for its database."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"CONVEYOR_DATABASE_URL is not a database URL: {exc}") from exc
    dialect = _DRIVERS.get(parsed.drivername)
    if dialect is None:
        raise ConfigurationError(
            f"unsupported database {parsed.drivername!r}: use sqlite:///path or postgresql://…"
        )
    if dialect == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigurationError(
            "an in-memory SQLite database cannot be shared between connections; "
            "use a file, e.g. sqlite:///./conveyor.db"
        )
    query = dict(parsed.query)
    if dialect == "postgresql" and "sslmode" in query:
        # libpq spelling → asyncpg spelling.
        query["ssl"] = query.pop("sslmode")
    return parsed.set(drivername=_ASYNC_DRIVER[dialect], query=query)


def _enable_wal(cursor: Any, attempts: int = 40) -> None:
    """WAL is a property of the file, set once; switching needs an exclusive lock that
    SQLite does not wait for, so processes opening a new file together retry."""
    for attempt in range(attempts):
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0] == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, however it is wrapped
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.025)


class Database:
    """An async engine plus the two kinds of transaction Conveyor uses."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = 10,
        sqlite_synchronous: str = "FULL",
        sqlite_busy_timeout_ms: int = 30_000,
    ) -> None:
        self.url = async_url(url)
        self.dialect: Dialect = (
            "sqlite" if self.url.drivername.startswith("sqlite") else "postgresql"
        )
        self.schema = schema
        # SQLite: this process's writers take turns on the connections' threads (see
        # `WriterLock`); two of them at a time go that far, the one writing and the next,
        # ready to start the moment the first commits. The rest wait here without
        # holding a connection (readers need them).
        self._sqlite_writers = asyncio.Semaphore(2)
        #: The `write()` transactions under way in this process.
        self.writes = WritesInFlight()
        self.engine: AsyncEngine = (
            self._sqlite_engine(sqlite_synchronous, sqlite_busy_timeout_ms, pool_size)
            if self.dialect == "sqlite"
            else self._postgresql_engine(schema, pool_size)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            settings.database_url,
            schema=settings.database_schema,
            pool_size=settings.database_pool_size,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )

    def _sqlite_engine(self, synchronous: str, busy_timeout_ms: int, pool_size: int) -> AsyncEngine:
        assert self.url.database is not None
        _private_file(Path(self.url.database).expanduser())
        engine = create_async_engine(
            self.url,
            module=OneHopDBAPI(WriterLock(timeout_s=busy_timeout_ms / 1000)),
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": busy_timeout_ms / 1000},
            hide_parameters=True,  # errors (and so logs) never show the values
        )
        pragmas = (
            f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
            f"PRAGMA synchronous={synchronous}",
            f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
            "PRAGMA foreign_keys=ON",
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            for pragma in pragmas:
                cursor.execute(pragma)
            _enable_wal(cursor)
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Connection) -> None:
            # Queued on the driver: it runs with the transaction's first statement.
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            sql = BEGIN_WRITE if mode == "IMMEDIATE" else "BEGIN"
            driver = conn.connection.dbapi_connection
            if isinstance(driver, OneHopConnection):
                driver.queue(sql, None, Pipelined(), many=False)
            else:
                conn.exec_driver_sql(sql)

        return engine

    def _postgresql_engine(self, schema: str | None, pool_size: int) -> AsyncEngine:
        server_settings = {"application_name": "conveyor"}
        if schema:
            server_settings["search_path"] = schema
        return create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=1800,
            connect_args={"server_settings": server_settings, "timeout": 10},
            hide_parameters=True,
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for reading (may also write on PostgreSQL, never needed)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: takes SQLite's write lock up front.

        Callbacks registered with `after_commit(conn, …)` run once it has committed.
        It counts in `writes` from the start (before it waits for a connection or for
        SQLite's lock) to the end (after the callbacks).
        """
        ticket = self.writes.begin()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.dialect == "sqlite":
                    await stack.enter_async_context(self._sqlite_writers)
                conn = await stack.enter_async_context(self.engine.connect())
                if self.dialect == "sqlite":
                    await conn.execution_options(sqlite_begin="IMMEDIATE")
                # `info` lives as long as the pooled connection: callbacks left there by
                # a transaction that was not a `write()` must not fire on this commit.
                conn.info.pop(_AFTER_COMMIT, None)
                try:
                    async with conn.begin():
                        yield conn
                finally:
                    # An invalidated connection (the server went away) has lost its info
                    # with the connection; asking for it would reconnect, outside async.
                    callbacks = [] if conn.invalidated else conn.info.pop(_AFTER_COMMIT, [])
            for callback in callbacks:  # only reached when the commit succeeded
                callback()
        finally:
            self.writes.end(ticket)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (SQLite gives its journal and
    WAL files the database file's mode), and take back what others could read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
