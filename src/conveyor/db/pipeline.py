"""Statements whose results can wait for the commit.

`pipelined(conn, statement)` runs `statement` in `conn`'s transaction no later than its
commit. On SQLite it costs no trip to the database thread of its own: it rides with the
connection's next statement or with the COMMIT (see `conveyor.db.sqlite_driver`), which
matters because SQLite has one writer and a write holds the lock for all its trips. On
PostgreSQL it runs at once. Either way it is part of the transaction: if it fails, the
statement or COMMIT it rode with fails and nothing of the transaction is kept.

On SQLite, inside a transaction, the statement is compiled once (per set of parameter
names) and queued straight on the driver: SQLAlchemy's execution machinery (events,
result objects, Python-side column defaults) is skipped, which is most of the cost of a
statement that is merely queued. Statements on tables with Python-side defaults, and
statements outside a transaction, take SQLAlchemy's path and run at once.

Its rows, when it returns any, are there once the transaction has committed (as the
driver gives them: plain tuples, without SQLAlchemy's type conversions).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Executable, Table
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

from conveyor.db.sqlite_driver import OneHopConnection, Pipelined


async def pipelined(
    conn: AsyncConnection, statement: Executable, parameters: Any = None
) -> Pipelined:
    """Queue `statement` (with `parameters`: a dict, or a list of dicts) in `conn`'s
    transaction; the returned handle holds its rows once the transaction committed."""
    result = Pipelined()
    driver = _driver(conn) if conn.dialect.name == "sqlite" else None
    rows = parameters if isinstance(parameters, list) else [parameters or {}]
    compiled = _Compiled.of(statement, tuple(rows[0]), conn.dialect) if driver and rows else None
    if driver is not None and compiled is not None:
        if isinstance(parameters, list):
            driver.queue(compiled.sql, [compiled.bind(r) for r in rows], result, many=True)
        else:
            driver.queue(compiled.sql, compiled.bind(rows[0]), result, many=False)
        return result
    # PostgreSQL, or a statement only SQLAlchemy's execution does justice: run it now.
    ran = await conn.execute(statement, parameters)
    result.rows = [tuple(row) for row in ran.all()] if ran.returns_rows else []
    return result


def _driver(conn: AsyncConnection) -> OneHopConnection | None:
    """Our SQLite driver's connection under `conn`, when a transaction is open on it."""
    if not conn.in_transaction():
        return None
    driver = conn.sync_connection.connection.dbapi_connection if conn.sync_connection else None
    return driver if isinstance(driver, OneHopConnection) else None


class _Compiled:
    """A statement compiled for SQLite's positional parameters, with the bind
    processors of its parameters' types."""

    __slots__ = ("compiled", "names", "processors", "sql")

    def __init__(self, compiled: SQLCompiler, dialect: Dialect) -> None:
        self.compiled = compiled
        self.sql = compiled.string
        self.names: Sequence[str] = compiled.positiontup or ()
        processors: dict[str, Callable[[Any], Any] | None] = {}
        for name in set(self.names):
            bind = compiled.binds[name]
            processors[name] = bind.type.dialect_impl(dialect).bind_processor(dialect)
        self.processors = processors

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def of(statement: Executable, keys: tuple[str, ...], dialect: Dialect) -> _Compiled | None:
        """`statement` compiled for parameters named `keys`; None when only SQLAlchemy's
        execution does it justice (a table with Python-side column defaults)."""
        if isinstance(statement, UpdateBase) and isinstance(statement.table, Table):
            columns = statement.table.columns
            if any(c.default is not None or c.onupdate is not None for c in columns):
                return None
        if not isinstance(statement, ClauseElement):
            return None
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)
        if compiled.positiontup is None:
            return None
        return _Compiled(compiled, dialect)

    def bind(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        params = self.compiled.construct_params(dict(values))
        processors = self.processors
        bound = []
        for name in self.names:
            process = processors[name]
            bound.append(params[name] if process is None else process(params[name]))
        return tuple(bound)
