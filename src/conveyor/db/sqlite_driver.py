"""SQLAlchemy's aiosqlite adapter, with one thread hop per statement instead of four.

aiosqlite runs each SQLite connection in a thread of its own; every call is a hop to that
thread and back (tens of µs on a busy loop). SQLAlchemy's adapter makes four per
statement (open a cursor, execute, fetch, close). SQLite has one writer at a time, and a
write transaction holds the lock for all its hops, so the hops, not SQLite, bound how
many writes per second a database takes: a record write with its outbox row made 12 of
them under the lock. Here a statement runs, fetches its rows and closes its cursor in a
single function on the connection's thread: 1 hop. The pool's rollback of a connection
it gets back costs no hop when the transaction has ended already (the usual case).

Everything else (connections, transactions, server-side cursors, errors) is SQLAlchemy's
adapter, unchanged; the engine gets this through `create_async_engine(module=...)`.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

Description = tuple[tuple[Any, ...], ...] | None


class _Done:
    """What a statement left behind, read on the connection's thread."""

    __slots__ = ("description", "lastrowid", "rowcount")

    def __init__(self, description: Description, rowcount: int, lastrowid: int | None) -> None:
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid


def _execute(conn: sqlite3.Connection, operation: str, parameters: Any) -> tuple[_Done, list[Any]]:
    cursor = conn.cursor()
    try:
        cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return _Done(description, cursor.rowcount, cursor.lastrowid), rows
    finally:
        cursor.close()


def _executemany(conn: sqlite3.Connection, operation: str, parameters: Sequence[Any]) -> _Done:
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, parameters)
        return _Done(cursor.description, cursor.rowcount, cursor.lastrowid)
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor that holds a statement's rows and no aiosqlite cursor."""

    __slots__ = ("_done",)

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # no driver cursor is kept
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = deque()
        self._done = _Done(None, -1, None)

    @property
    def description(self) -> Description:
        return self._done.description

    @property
    def rowcount(self) -> int:
        return self._done.rowcount

    @property
    def lastrowid(self) -> int:
        return self._done.lastrowid  # type: ignore[return-value]

    async def _async_soft_close(self) -> None:
        return None  # nothing is open on the driver's side

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            done, rows = await connection._execute(  # type: ignore[no-untyped-call]
                _execute, connection._conn, operation, parameters
            )
        self._done = done
        self._rows = deque(rows)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            self._done = await connection._execute(  # type: ignore[no-untyped-call]
                _executemany, connection._conn, operation, seq_of_parameters
            )
        self._rows.clear()

    def nextset(self) -> None:
        return None  # SQLite statements have one result set


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def rollback(self) -> None:
        """Roll back, without a hop when no transaction is open: the pool "resets" every
        connection it gets back with a rollback, most often right after a commit."""
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        if driver._connection is not None and driver._connection.in_transaction:
            super().rollback()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module handed to `create_async_engine(module=...)`."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        creator = kw.pop("async_creator_fn", None)
        if creator is not None:
            connection = creator(*arg, **kw)
        else:
            connection = self.aiosqlite.connect(*arg, **kw)
            connection._thread.daemon = True  # as SQLAlchemy's adapter does
        return OneHopConnection(self, await_(connection))
