"""Statements whose results can wait for the commit.

`pipelined(conn, statement)` runs `statement` in `conn`'s transaction no later than its
commit. On SQLite it costs no trip to the database thread of its own: it rides with the
connection's next statement or with the COMMIT (see `conveyor.db.sqlite_driver`), which
matters because SQLite has one writer and a write holds the lock for all its trips. On
PostgreSQL it runs at once. Either way it is part of the transaction: if it fails, the
statement or COMMIT it rode with fails and nothing of the transaction is kept.

Inside a transaction the statement is compiled once (per set of parameter names) and
handed straight to the driver: SQLAlchemy's execution machinery (events, result objects,
Python-side column defaults) is skipped, which is most of the event loop's cost of a
small statement. On SQLite it is queued on our driver; on PostgreSQL it is sent on the
asyncpg connection under SQLAlchemy's adapter (`_on_asyncpg`), and its errors are
translated into SQLAlchemy's, as if it had gone through `conn.execute`. Statements on
tables with Python-side defaults, and statements outside a transaction, take
SQLAlchemy's path.

Its rows, when it returns any, are there once the transaction has committed (as the
driver gives them: plain tuples, without SQLAlchemy's type conversions).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, Dialect, Executable, Table
from sqlalchemy.exc import InvalidRequestError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.util import greenlet_spawn

from conveyor.db.sqlite_driver import OneHopConnection, Pipelined, run_queued

#: How a statement's parameter at one position gets its value: the key of the value
#: among the parameters (None: the statement's own), the parameter, its bind processor.
_Position = tuple[str | None, BindParameter[Any], Callable[[Any], Any] | None]


async def pipelined(
    conn: AsyncConnection,
    statement: Executable,
    parameters: Any = None,
    *,
    may_conflict: bool = False,
) -> Pipelined:
    """Queue `statement` (with `parameters`: a dict, or a list of dicts) in `conn`'s
    transaction; the returned handle holds its rows once the transaction committed.
    On SQLite, a statement that `may_conflict` and breaks a constraint fails alone, its
    error kept on the handle (see `Pipelined`); elsewhere the error is raised."""
    result = Pipelined(may_conflict=may_conflict)
    many = isinstance(parameters, list)
    rows = parameters if many else [parameters or {}]
    compiled = None
    if rows and conn.in_transaction():
        compiled = _Compiled.of(statement, tuple(rows[0]), conn.dialect)
    if compiled is not None:
        if (driver := _sqlite_driver(conn)) is not None:
            bound = _bound(compiled, rows)
            driver.queue(compiled.sql, bound if many else bound[0], result, many=many)
            return result
        if (adapted := _asyncpg(conn)) is not None and not (many and compiled.returns_rows):
            result.rows = await _on_asyncpg(conn, adapted, compiled, rows, many=many)
            return result
    # Outside a transaction, or a statement only SQLAlchemy's execution does justice.
    ran = await conn.execute(statement, parameters)
    result.rows = [tuple(row) for row in ran.all()] if ran.returns_rows else []
    return result


async def pipelined_each(
    conn: AsyncConnection,
    statement: Executable,
    rows: Sequence[Mapping[str, Any]],
    *,
    may_conflict: bool = False,
) -> list[Pipelined]:
    """`pipelined(conn, statement, row)` for each of `rows` (all with the same keys),
    each with its own handle; the statement is looked up and the driver found once, not
    once a row (a batch of a hundred messages is a hundred statements on SQLite)."""
    if not rows:
        return []
    compiled = None
    if conn.in_transaction():
        compiled = _Compiled.of(statement, tuple(rows[0]), conn.dialect)
    driver = _sqlite_driver(conn) if compiled is not None else None
    if compiled is None or driver is None:
        return [await pipelined(conn, statement, row, may_conflict=may_conflict) for row in rows]
    handles = []
    for values in _bound(compiled, list(rows)):
        handle = Pipelined(may_conflict=may_conflict)
        driver.queue(compiled.sql, values, handle, many=False)
        handles.append(handle)
    return handles


async def flush(conn: AsyncConnection) -> None:
    """Run the statements queued on `conn` now (SQLite), so that their rows are there
    before the commit; elsewhere they ran already."""
    if (driver := _sqlite_driver(conn)) is not None:
        async with driver._execute_mutex:
            queued = driver.take_pipeline()
            if not queued:
                return
            try:
                await driver.hop(run_queued, queued)
            except Exception as error:
                # As the statements' own execution would raise it (SQLAlchemy's class).
                operation, parameters, _, _ = queued[-1]
                await greenlet_spawn(
                    _raise_translated, conn, driver, error, operation, [parameters]
                )
                raise  # not reached: _raise_translated always raises


def _sqlite_driver(conn: AsyncConnection) -> OneHopConnection | None:
    """Our SQLite driver's connection under `conn`."""
    if conn.dialect.name != "sqlite" or conn.sync_connection is None:
        return None
    driver = conn.sync_connection.connection.dbapi_connection
    return driver if isinstance(driver, OneHopConnection) else None


def _asyncpg(conn: AsyncConnection) -> Any:
    """SQLAlchemy's adapter of the asyncpg connection under `conn`, if that is the driver.
    `_on_asyncpg` relies on the adapter's attributes in SQLAlchemy 2.1 (pinned):
    `_connection`, `_transaction`, `_start_transaction`, `_execute_mutex` and
    `_handle_exception`."""
    if conn.dialect.driver != "asyncpg" or conn.sync_connection is None:
        return None
    return conn.sync_connection.connection.dbapi_connection


async def _on_asyncpg(
    conn: AsyncConnection,
    adapted: Any,
    compiled: _Compiled,
    rows: list[Mapping[str, Any]],
    *,
    many: bool,
) -> list[Any]:
    """Run the statement on the asyncpg connection of `conn`'s transaction; errors come
    out as SQLAlchemy's, with a lost connection invalidated, as `conn.execute` does.
    Cancelled (or interrupted) half-way, the connection is in an unknown state (BEGIN
    may have reached the server without the adapter knowing): it is invalidated, so the
    pool never hands it out again, as `conn.execute` does."""
    assert conn.sync_connection is not None
    bound = _bound(compiled, rows)
    try:
        async with adapted._execute_mutex:
            if adapted._transaction is None:  # begun at the first statement, as the adapter does
                await adapted._start_transaction()
            if many:
                await adapted._connection.executemany(compiled.sql, bound)
                return []
            return [tuple(row) for row in await adapted._connection.fetch(compiled.sql, *bound[0])]
    except Exception as error:
        await greenlet_spawn(_raise_translated, conn, adapted, error, compiled.sql, bound)
        raise  # not reached: _raise_translated always raises
    except BaseException as exit_error:
        # Outside a greenlet the adapter closes the connection at once, without I/O.
        conn.sync_connection.invalidate(exit_error)
        raise


def _bound(compiled: _Compiled, rows: list[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows' parameters, positional and through their types' bind processors; a
    value the processors refuse is a StatementError, as with `conn.execute`."""
    try:
        return [compiled.bind(r) for r in rows]
    except Exception as exc:
        raise StatementError(
            f"cannot bind the parameters: {exc!r}", compiled.sql, rows, exc
        ) from exc


def _raise_translated(
    conn: AsyncConnection, adapted: Any, error: Exception, sql: str, bound: list[Any]
) -> None:
    """Raise `error` as `conn.execute` would have: the adapter turns asyncpg's error into
    its DBAPI class, then SQLAlchemy wraps it (IntegrityError, OperationalError, ...)
    and invalidates the connection when it is gone. Runs in a greenlet, which that
    invalidation may need to close the connection."""
    assert conn.sync_connection is not None
    try:
        adapted._handle_exception(error)
    except Exception as dbapi_error:
        conn.sync_connection._handle_dbapi_exception(
            dbapi_error, sql, bound if len(bound) > 1 else bound[0], None, None
        )


class _Compiled:
    """A statement compiled for its dialect's positional parameters, with a plan to bind
    them: for each position, the key of its value among the parameters the statement is
    compiled for (or the value the statement holds itself) and its type's bind processor.
    The plan does what `construct_params` and the processors do, at a fraction of the
    cost (it knows the parameter names in advance)."""

    __slots__ = ("plan", "returns_rows", "sql")

    def __init__(self, compiled: SQLCompiler, dialect: Dialect, keys: Sequence[str]) -> None:
        self.sql = compiled.string
        dml = compiled.isinsert or compiled.isupdate or compiled.isdelete
        self.returns_rows = bool(compiled.returning) or not dml
        escaped = compiled.escaped_bind_names
        by_position = {
            escaped.get(name, name): (bp, name) for bp, name in compiled.bind_names.items()
        }
        given = set(keys)
        plan: list[_Position] = []
        for position in compiled.positiontup or ():
            param, name = by_position[position]
            key = param.key if param.key in given else name if name in given else None
            process = param.type.dialect_impl(dialect).bind_processor(dialect)
            plan.append((key, param, process))
        self.plan = plan

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def of(statement: Executable, keys: tuple[str, ...], dialect: Dialect) -> _Compiled | None:
        """`statement` compiled for parameters named `keys`; None when only SQLAlchemy's
        execution does it justice (a table with Python-side column defaults, a dialect
        whose parameters are not positional, an INSERT whose rows must come back in
        parameter order, one whose parameters are rendered at execution)."""
        if isinstance(statement, UpdateBase) and isinstance(statement.table, Table):
            columns = statement.table.columns
            if any(c.default is not None or c.onupdate is not None for c in columns):
                return None
        if not isinstance(statement, ClauseElement):
            return None
        # As for many rows: no RETURNING of the primary key unless the statement asks.
        compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
        assert isinstance(compiled, SQLCompiler)
        if compiled.positiontup is None:
            return None
        if any(p.expanding or p.literal_execute for p in compiled.bind_names):
            return None  # rendered into the SQL at execution (IN lists and the like)
        imv = compiled._insertmanyvalues
        if imv is not None and (imv.sort_by_parameter_order or imv.num_sentinel_columns):
            return None  # a template that SQLAlchemy's execution rewrites before sending
        return _Compiled(compiled, dialect, keys)

    def bind(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        bound = []
        for key, param, process in self.plan:
            if key is not None:
                value = values[key]
            elif param.required:
                raise InvalidRequestError(f"A value is required for bind parameter {param.key!r}")
            else:
                value = param.effective_value if param.callable else param.value
            bound.append(value if process is None else process(value))
        return tuple(bound)
