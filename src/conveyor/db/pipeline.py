"""Statements whose results can wait for the commit.

`pipelined(conn, statement)` runs `statement` in `conn`'s transaction no later than its
commit. On SQLite it costs no trip to the database thread of its own: it rides with the
connection's next statement or with the COMMIT (see `conveyor.db.sqlite_driver`), which
matters because SQLite has one writer and a write holds the lock for all its trips. On
PostgreSQL it runs at once. Either way it is part of the transaction: if it fails, the
statement or COMMIT it rode with fails and nothing of the transaction is kept.

Its rows, when it returns any, are there once the transaction has committed (as the
driver gives them: plain tuples, without SQLAlchemy's type conversions).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db.sqlite_driver import PIPELINE_OPTION, Pipelined


async def pipelined(
    conn: AsyncConnection, statement: Executable, parameters: Any = None
) -> Pipelined:
    """Queue `statement` (with `parameters`: a dict, or a list of dicts) in `conn`'s
    transaction; the returned handle holds its rows once the transaction committed."""
    result = Pipelined()
    if conn.dialect.name == "sqlite":
        # `run_sync`: SQLAlchemy's `execute` insists on a trip to the driver, and a
        # queued statement makes none.
        options = {PIPELINE_OPTION: result}
        ran: CursorResult[Any] = await conn.run_sync(
            lambda sync: sync.execute(statement, parameters, execution_options=options)
        )
        if result.queued:
            return result
    else:
        ran = await conn.execute(statement, parameters)
    result.rows = [tuple(row) for row in ran.all()] if ran.returns_rows else []
    return result
