"""SQLAlchemy's aiosqlite adapter, with one thread hop per statement instead of four.

aiosqlite runs each SQLite connection in a thread of its own; every call is a hop to that
thread and back (tens of µs on a busy loop). SQLAlchemy's adapter makes four per
statement (open a cursor, execute, fetch, close). SQLite has one writer at a time, and a
write transaction holds the lock for all its hops, so the hops, not SQLite, bound how
many writes per second a database takes: a record write with its outbox row made 12 of
them under the lock. Here a statement runs, fetches its rows and closes its cursor in a
single function on the connection's thread: 1 hop. The pool's rollback of a connection
it gets back costs no hop when the transaction has ended already (the usual case).

Pipelined statements (`conveyor.db.pipelined`) make no hop of their own: they wait on the
connection and run, in order, at the start of its next hop (the next statement or the
COMMIT). A transaction's BEGIN is one (see the engine), and so is the outbox row a linked
write adds after its record: a record write is two hops, with or without a link. An
error in a pipelined statement is raised by the statement or COMMIT it rode with, which
then fails, and the transaction rolls back as a whole.

Everything else (connections, transactions, server-side cursors, errors) is SQLAlchemy's
adapter, unchanged; the engine gets this through `create_async_engine(module=...)`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

Description = tuple[tuple[Any, ...], ...] | None
T = TypeVar("T")
#: How often a writer waiting for its turn checks whether its caller gave up.
_ABANDON_CHECK_S = 0.05
#: The statement that starts a write transaction; it waits for the `WriterLock` first.
BEGIN_WRITE = "BEGIN IMMEDIATE"


class Pipelined:
    """A statement queued on a connection; `rows` once it has run (on its thread).

    A statement queued `may_conflict` that breaks a constraint fails alone: SQLite undoes
    that statement only, the transaction goes on, and the error is kept in `error`."""

    __slots__ = ("error", "may_conflict", "rows")

    def __init__(self, *, may_conflict: bool = False) -> None:
        self.rows: list[Any] | None = None
        self.error: sqlite3.IntegrityError | None = None
        self.may_conflict = may_conflict


#: (operation, parameters, many, result)
_Queued = tuple[str, Any, bool, Pipelined]


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


class WriterLock:
    """One process's turn to write a SQLite file, held from `BEGIN IMMEDIATE` to the end
    of the transaction, and taken and given back on the connections' own threads.

    SQLite has one writer at a time, and its busy handler sleeps up to 100 ms between
    tries, which collapses throughput when writers of one process contend; so they queue
    here instead. Taking the turn on the connection's thread means the next writer,
    waiting there with its first statement, starts the moment the last one's COMMIT is
    done, without a trip through the event loop (+35 % record writes per second).
    """

    def __init__(self, timeout_s: float) -> None:
        self._lock = threading.Lock()
        self._owner: sqlite3.Connection | None = None
        self.timeout_s = timeout_s

    def acquire(self, conn: sqlite3.Connection, abandoned: Callable[[], bool]) -> None:
        """Wait for the turn, up to `timeout_s`; give up sooner once `abandoned()`."""
        deadline = time.monotonic() + self.timeout_s
        while not self._lock.acquire(timeout=_ABANDON_CHECK_S):
            if abandoned():
                raise sqlite3.OperationalError("the write was cancelled while it waited its turn")
            if time.monotonic() >= deadline:
                raise sqlite3.OperationalError(
                    f"database is locked (this process's other writers held it "
                    f"{self.timeout_s:g} s)"
                )
        self._owner = conn

    def settle(self, conn: sqlite3.Connection) -> None:
        """After a hop on `conn`: give the turn back if its transaction has ended."""
        if self._owner is conn and not conn.in_transaction:
            self.release(conn)

    def release(self, conn: sqlite3.Connection) -> None:
        """Give the turn back if `conn` holds it (also used when it is closing)."""
        if self._owner is conn:
            self._owner = None
            self._lock.release()


class _Turn:
    """A connection's view of the `WriterLock`: it knows whether the connection's last
    hop was abandoned (its caller cancelled), so that a wait for the turn stops."""

    __slots__ = ("abandoned", "lock")

    def __init__(self, lock: WriterLock) -> None:
        self.lock = lock
        self.abandoned = False

    def acquire(self, conn: sqlite3.Connection) -> None:
        self.lock.acquire(conn, lambda: self.abandoned)

    def settle(self, conn: sqlite3.Connection) -> None:
        self.lock.settle(conn)

    def release(self, conn: sqlite3.Connection) -> None:
        self.lock.release(conn)


def _run(conn: sqlite3.Connection, writer: _Turn, queued: Sequence[_Queued]) -> None:
    for operation, parameters, many, result in queued:
        if many:
            _executemany(conn, operation, parameters)
            result.rows = []
            continue
        if operation == BEGIN_WRITE:
            writer.acquire(conn)
        if not result.may_conflict:
            result.rows = _execute(conn, operation, parameters)[1]
            continue
        try:
            result.rows = _execute(conn, operation, parameters)[1]
        except sqlite3.IntegrityError as error:
            result.error = error


# What runs on a connection's thread: the queued statements, then one action; then the
# writer's turn is given back if the transaction is over (also when a statement failed).


def run_queued(conn: sqlite3.Connection, writer: _Turn, queued: Sequence[_Queued]) -> None:
    try:
        _run(conn, writer, queued)
    finally:
        writer.settle(conn)


def _execute_after(
    conn: sqlite3.Connection,
    writer: _Turn,
    queued: Sequence[_Queued],
    operation: str,
    parameters: Any,
) -> tuple[_Done, list[Any]]:
    try:
        _run(conn, writer, queued)
        return _execute(conn, operation, parameters)
    finally:
        writer.settle(conn)


def _executemany_after(
    conn: sqlite3.Connection,
    writer: _Turn,
    queued: Sequence[_Queued],
    operation: str,
    parameters: Any,
) -> _Done:
    try:
        _run(conn, writer, queued)
        return _executemany(conn, operation, parameters)
    finally:
        writer.settle(conn)


def _commit_after(conn: sqlite3.Connection, writer: _Turn, queued: Sequence[_Queued]) -> None:
    try:
        _run(conn, writer, queued)
        conn.commit()
    finally:
        writer.settle(conn)


def _close(conn: sqlite3.Connection, writer: _Turn) -> None:
    try:
        conn.close()  # rolls back what is open; aiosqlite's own close is then a no-op
    finally:
        writer.release(conn)


def _rollback(conn: sqlite3.Connection, writer: _Turn) -> None:
    try:
        if conn.in_transaction:
            conn.rollback()
    finally:
        writer.settle(conn)


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
        adapt: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        async with adapt._execute_mutex:
            done, rows = await adapt.hop(
                _execute_after, adapt.take_pipeline(), operation, parameters
            )
        self._done = done
        self._rows = deque(rows)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        adapt: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        async with adapt._execute_mutex:
            self._done = await adapt.hop(
                _executemany_after, adapt.take_pipeline(), operation, seq_of_parameters
            )
        self._rows.clear()

    def nextset(self) -> None:
        return None  # SQLite statements have one result set


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_pipeline", "writer")
    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def __init__(self, dbapi: OneHopDBAPI, connection: aiosqlite.Connection) -> None:
        super().__init__(dbapi, connection)  # type: ignore[arg-type]
        self._pipeline: list[_Queued] = []
        self.writer = _Turn(dbapi.writer)

    def queue(self, operation: str, parameters: Any, result: Pipelined, *, many: bool) -> None:
        """Queue a statement, in the driver's form, for the next hop."""
        self._pipeline.append((operation, parameters, many, result))

    def take_pipeline(self) -> list[_Queued]:
        """The queued statements, for the hop about to run them (the queue is emptied)."""
        queued, self._pipeline = self._pipeline, []
        return queued

    def cursor(self, server_side: bool = False) -> Any:
        if server_side and self._pipeline:
            # A server-side cursor is aiosqlite's own: run what is queued before it.
            self._hop(run_queued, self.take_pipeline())
        return super().cursor(server_side)

    async def hop(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(sqlite connection, writer, *args)` on the connection's thread.

        A hop whose wait is cancelled still runs there later (aiosqlite's queue keeps
        it): it may yet open a transaction and take the writer's turn, so the next
        rollback must not trust `in_transaction` as read from here.
        """
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            return await driver._execute(function, driver._conn, self.writer, *args)  # type: ignore[no-untyped-call,no-any-return]
        except BaseException as error:
            if not isinstance(error, Exception):
                self.writer.abandoned = True
            raise

    def _hop(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            await_(self.hop(function, *args))
        except Exception as error:
            self._handle_exception(error)

    def commit(self) -> None:
        """Commit, in the same hop as the statements still queued."""
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        if driver._connection is not None:
            self._hop(_commit_after, self.take_pipeline())

    def rollback(self) -> None:
        """Roll back, dropping queued statements; no hop when no transaction is open: the
        pool "resets" every connection it gets back with a rollback, most often right
        after a commit (and a transaction whose BEGIN is still queued never opened)."""
        self._pipeline.clear()
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        if driver._connection is None:
            return
        if self.writer.abandoned or driver._connection.in_transaction:
            # Queued behind any abandoned hop: it rolls back whatever that one opened.
            self._hop(_rollback)
            self.writer.abandoned = False

    def close(self) -> None:
        self._pipeline.clear()
        self._close_on_thread()
        super().close()

    async def _terminate_graceful_close(self) -> None:
        self._close_on_thread()
        await super()._terminate_graceful_close()

    def _terminate_force_close(self) -> None:
        self._close_on_thread()
        super()._terminate_force_close()

    def _close_on_thread(self) -> None:
        """Queue the close, with the writer's turn given back after it, behind the hops
        already queued: one of those may yet begin a write and take the turn (its caller
        was cancelled, so SQLAlchemy terminates the connection: through aiosqlite's close
        or by stopping its thread, neither of which knows the turn).
        """
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        sqlite_connection = driver._connection
        if sqlite_connection is not None:
            driver._tx.put_nowait((None, partial(_close, sqlite_connection, self.writer)))


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module handed to `create_async_engine(module=...)`."""

    def __init__(self, writer: WriterLock) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.writer = writer

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        creator = kw.pop("async_creator_fn", None)
        if creator is not None:
            connection = creator(*arg, **kw)
        else:
            connection = self.aiosqlite.connect(*arg, **kw)
            connection._thread.daemon = True  # as SQLAlchemy's adapter does
        return OneHopConnection(self, await_(connection))
