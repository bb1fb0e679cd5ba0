"""Many rows into one table, inside a write transaction, at the cost of one statement.

The hot write paths (a publish to an embedded queue, a record create) commit the rows of
concurrent requests together (`conveyor.group_commit`). SQLAlchemy's executemany
with RETURNING costs tens of µs a row on the event loop (parameters processed through
its generic machinery, the statement rendered again for each batch size); here each
statement is built and compiled once and bound by a plan (`conveyor.db.pipelined`):

- SQLite: one `INSERT ... RETURNING` per row, queued on the connection: they run on the
  database's thread together with the transaction's COMMIT, one trip for the batch.
- PostgreSQL: one `INSERT ... SELECT ... FROM unnest(:column arrays) WITH ORDINALITY`
  for all rows, in their order; the new ids ascend in that order, so sorting the
  returned rows by id gives them back in the order given (SQLAlchemy's
  "insertmanyvalues" relies on the same for serial keys).

A spec's `guard` makes the rows conditional on a row existing elsewhere (a table's
definition still at the version the rows were checked against): where it does not hold,
nothing is stored and the rows come back as None. Returned rows go through their
columns' result processors, as with `conn.execute`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db.pipeline import pipelined
from conveyor.db.sqlite_driver import Pipelined

Row = tuple[Any, ...]
Processor = Callable[[Any], Any] | None
#: Statements kept at most (one per table definition and set of fields in use).
MAX_SPECS = 512


@dataclass(frozen=True)
class Spec:
    """What an insert writes and returns, and its guard: rows are stored only while
    `guard_table` holds a row with the values given for `guard_names`. Hashable, so
    that its statements are built once."""

    table: sa.Table
    names: tuple[str, ...]
    returning: tuple[str, ...]
    guard_table: sa.Table | None = None
    guard_names: tuple[str, ...] = ()


class Inserted:
    """The rows an insert stored, in the order given (on SQLite, once the transaction
    committed): each the returned columns, or None where nothing was stored (a guard
    that did not hold; on SQLite, with `may_conflict`, a broken constraint, whose error
    is then in `errors`)."""

    def __init__(
        self,
        processors: Sequence[Processor],
        *,
        handles: Sequence[Pipelined] = (),
        rows: Sequence[Row | None] = (),
    ) -> None:
        self._processors = processors
        self._handles = handles
        self._rows = rows

    def rows(self) -> list[Row | None]:
        if self._handles:
            raw = [h.rows[0] if h.rows else None for h in self._handles]
        else:
            raw = list(self._rows)
        return [None if row is None else self._processed(row) for row in raw]

    @property
    def errors(self) -> list[Exception | None]:
        return [h.error for h in self._handles] or [None] * len(self._rows)

    def _processed(self, row: Row) -> Row:
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(row, self._processors, strict=True)
        )


async def insert(
    conn: AsyncConnection,
    spec: Spec,
    rows: Sequence[Mapping[str, Any]],
    *,
    guard: Sequence[Any] = (),
    may_conflict: bool = False,
) -> Inserted:
    """Insert `rows` (each with a value for every name of `spec`) in `conn`'s write
    transaction; `guard` holds the values of the spec's guard columns. On PostgreSQL a
    broken constraint fails the statement, whatever `may_conflict` says."""
    dialect = conn.dialect
    statement, processors = _compiled(spec, dialect)
    guards = {f"g_{name}": value for name, value in zip(spec.guard_names, guard, strict=True)}
    if dialect.name == "postgresql":
        arrays = {name: [row[name] for row in rows] for name in spec.names}
        stored = (await pipelined(conn, statement, arrays | guards)).rows or []
        return Inserted(processors, rows=_in_given_order(spec, stored, len(rows)))
    handles = [
        await pipelined(conn, statement, {**row, **guards}, may_conflict=may_conflict)
        for row in rows
    ]
    return Inserted(processors, handles=handles)


def _in_given_order(spec: Spec, stored: list[Row], count: int) -> list[Row | None]:
    if not stored:
        return [None] * count
    assert len(stored) == count, "an INSERT ... SELECT stores all of its rows or none"
    if "id" in spec.returning:
        position = spec.returning.index("id")
        stored.sort(key=lambda row: row[position])
    return list(stored)


_CACHE: dict[tuple[Spec, str], tuple[Any, tuple[Processor, ...]]] = {}


def _compiled(spec: Spec, dialect: sa.Dialect) -> tuple[Any, tuple[Processor, ...]]:
    """The statement of `spec` for `dialect`, and the result processors of its rows."""
    key = (spec, dialect.name)
    found = _CACHE.get(key)
    if found is None:
        if len(_CACHE) >= MAX_SPECS:
            _CACHE.clear()
        statement = _statement(spec, dialect.name)
        processors = tuple(_result_processor(spec.table.c[n], dialect) for n in spec.returning)
        found = _CACHE[key] = (statement, processors)
    return found


#: PostgreSQL's type ids, which result processors may ask for (asyncpg's numeric does).
_NUMERIC_OID, _FLOAT8_OID = 1700, 701


def _result_processor(column: sa.Column[Any], dialect: sa.Dialect) -> Processor:
    numeric = isinstance(column.type, sa.Numeric) or isinstance(
        getattr(column.type, "impl_instance", None), sa.Numeric
    )
    float_ = isinstance(column.type, sa.Float)
    coltype = (_FLOAT8_OID if float_ else _NUMERIC_OID) if numeric else None
    return column.type.dialect_impl(dialect).result_processor(dialect, coltype)


def _statement(spec: Spec, dialect_name: str) -> Any:
    """`INSERT INTO t (names) SELECT ... [WHERE EXISTS guard] RETURNING ...`, from bound
    values (SQLite, one row) or from one array per column (PostgreSQL, every row)."""
    columns = spec.table.c
    source: sa.Select[Any]
    if dialect_name == "postgresql":
        arrays = [sa.bindparam(n, type_=postgresql.ARRAY(columns[n].type)) for n in spec.names]
        given = (
            sa.func.unnest(*arrays)
            .table_valued(*spec.names, with_ordinality="conveyor_n")
            .render_derived()
        )
        source = sa.select(*(given.c[n] for n in spec.names)).order_by(given.c.conveyor_n)
    else:
        source = sa.select(*(sa.bindparam(n, type_=columns[n].type) for n in spec.names))
    if spec.guard_table is not None:
        table = spec.guard_table
        source = source.where(
            sa.select(table.c[spec.guard_names[0]])
            .where(*(table.c[n] == sa.bindparam(f"g_{n}") for n in spec.guard_names))
            .exists()
        )
    return (
        sa.insert(spec.table)
        .from_select(list(spec.names), source)
        .returning(*(columns[n] for n in spec.returning))
    )
