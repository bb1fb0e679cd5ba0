"""Many rows into one table, inside a write transaction, at the cost of one statement.

The hot write paths (a publish to an embedded queue, a record create) commit the rows of
concurrent requests together (`conveyor.group_commit`). SQLAlchemy's executemany
with RETURNING costs tens of µs a row on the event loop (parameters processed through
its generic machinery, the statement rendered again for each batch size); here each
statement is built and compiled once and bound by a plan (`conveyor.db.pipelined`):

- SQLite: statements queued on the connection, which run on the database's thread
  together with the transaction's COMMIT, one trip for the batch: one multi-row
  `INSERT ... VALUES (...), (...) RETURNING` per power-of-two chunk of the rows (a
  batch of 100 is three statements, and nine statements serve every batch size; the
  new ids ascend in the order of the VALUES, so sorting by id gives the order given),
  or, where a row may fail alone (`may_conflict`) or a guard decides, one
  `INSERT ... SELECT ... RETURNING` per row.
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

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db.pipeline import pipelined, pipelined_each
from conveyor.db.sqlite_driver import Pipelined

Row = tuple[Any, ...]
Processor = Callable[[Any], Any] | None
#: Statements kept at most (one per table definition and set of fields in use).
MAX_SPECS = 512


@dataclass(frozen=True)
class Spec:
    """What an insert writes and returns: `names` hold a value per row, `constants` one
    value for every row of the call (bound and converted once, not once a row), and
    rows are stored only while `guard_table` holds a row with the values given for
    `guard_names`. Hashable, so that its statements are built once."""

    table: sa.Table
    names: tuple[str, ...]
    returning: tuple[str, ...]
    constants: tuple[str, ...] = ()
    guard_table: sa.Table | None = None
    guard_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Plan:
    statement: Any
    #: The columns the statement returns: `returning` but the constants.
    returned: tuple[str, ...]
    #: Where each column of `returning` comes from: (True, i) the statement's i-th
    #: column, (False, i) the i-th constant.
    layout: tuple[tuple[bool, int], ...]
    processors: tuple[Processor, ...]
    #: PostgreSQL: each column's bind processor, applied here to every element of its
    #: array (SQLAlchemy's ARRAY would take a JSON value that is a list for a dimension).
    array_binds: tuple[Processor, ...]
    constant_binds: tuple[Processor, ...]
    constant_results: tuple[Processor, ...]


#: SQLite's limit on a statement's bound parameters (SQLITE_MAX_VARIABLE_NUMBER).
MAX_PARAMETERS = 32_766
#: SQLite: the sizes multi-row INSERTs are cut into (a batch of 50 is 32 + 16 + 2).
_CHUNKS = (256, 128, 64, 32, 16, 8, 4, 2, 1)


class Inserted:
    """The rows an insert stored, in the order given (on SQLite, once the transaction
    committed): each the columns of `returning`, or None where nothing was stored (a
    guard that did not hold; on SQLite, with `may_conflict`, a broken constraint, whose
    error is then in `errors`)."""

    def __init__(
        self,
        plan: _Plan,
        constants: Row,
        *,
        handles: Sequence[Pipelined] = (),
        chunks: Sequence[tuple[Pipelined, int]] = (),
        rows: Sequence[Row | None] = (),
    ) -> None:
        self._plan = plan
        self._constants = constants
        self._handles = handles
        self._chunks = chunks
        self._rows = rows

    def rows(self) -> list[Row | None]:
        raw: list[Row | None]
        if self._handles:
            raw = [h.rows[0] if h.rows else None for h in self._handles]
        elif self._chunks:
            raw = []
            for handle, count in self._chunks:
                raw += _in_given_order(self._plan, list(handle.rows or ()), count)
        else:
            raw = list(self._rows)
        return [None if row is None else self._complete(row) for row in raw]

    @property
    def errors(self) -> list[Exception | None]:
        return [h.error for h in self._handles] or [None] * len(self._rows)

    def _complete(self, row: Row) -> Row:
        processed = [
            value if process is None or value is None else process(value)
            for value, process in zip(row, self._plan.processors, strict=True)
        ]
        constants = self._constants
        return tuple(
            processed[i] if returned else constants[i] for returned, i in self._plan.layout
        )


async def insert(
    conn: AsyncConnection,
    spec: Spec,
    rows: Sequence[Mapping[str, Any]],
    *,
    constants: Sequence[Any] = (),
    guard: Sequence[Any] = (),
    may_conflict: bool = False,
) -> Inserted:
    """Insert `rows` (each with a value for every name of `spec`; `constants` the values
    of its constants, `guard` of its guard columns) in `conn`'s write transaction. On
    PostgreSQL a broken constraint fails the statement, whatever `may_conflict` says."""
    dialect = conn.dialect
    plan = _plan(spec, dialect)
    bound = [
        _bound(bind, value) for value, bind in zip(constants, plan.constant_binds, strict=True)
    ]
    stored = tuple(
        value if result is None or value is None else result(value)
        for value, result in zip(bound, plan.constant_results, strict=True)
    )
    extra = {f"c_{n}": v for n, v in zip(spec.constants, bound, strict=True)}
    extra |= {f"g_{n}": v for n, v in zip(spec.guard_names, guard, strict=True)}
    if dialect.name == "postgresql":
        arrays = {
            name: [
                row[name] if bind is None or row[name] is None else bind(row[name]) for row in rows
            ]
            for name, bind in zip(spec.names, plan.array_binds, strict=True)
        }
        returned = (await pipelined(conn, plan.statement, arrays | extra)).rows or []
        in_order = _in_given_order(plan, returned, len(rows))
        return Inserted(plan, stored, rows=in_order)
    if may_conflict or spec.guard_table is not None or "id" not in plan.returned:
        given = [{**row, **extra} for row in rows] if extra else rows
        handles = await pipelined_each(conn, plan.statement, given, may_conflict=may_conflict)
        return Inserted(plan, stored, handles=handles)
    # The multi-row statement binds its constants through their columns' types itself.
    given_constants = {f"c_{n}": v for n, v in zip(spec.constants, constants, strict=True)}
    chunks, at = [], 0
    per_row = len(spec.names) + len(spec.constants)
    for size in _chunk_sizes(len(rows), per_row):
        values = dict(given_constants)
        for i, row in enumerate(rows[at : at + size]):
            values.update({f"{name}_{i}": row[name] for name in spec.names})
        handle = await pipelined(conn, _values_statement(spec, plan.returned, size), values)
        chunks.append((handle, size))
        at += size
    return Inserted(plan, stored, chunks=chunks)


def _chunk_sizes(count: int, per_row: int) -> list[int]:
    """`count` rows cut into sizes of `_CHUNKS`, none over SQLite's bound parameters."""
    sizes = []
    for size in _CHUNKS:
        if size * per_row > MAX_PARAMETERS and size > 1:
            continue
        while count >= size:
            sizes.append(size)
            count -= size
    return sizes


@functools.lru_cache(maxsize=MAX_SPECS)
def _values_statement(spec: Spec, returned: tuple[str, ...], count: int) -> Any:
    """SQLite: `INSERT INTO t (names, constants) VALUES (...) `count` times, RETURNING ...`, the
    names bound as `name_i` for the i-th row, the constants as `c_name` in every row."""
    columns = spec.table.c
    constants = {n: sa.bindparam(f"c_{n}", type_=columns[n].type) for n in spec.constants}
    rows = [
        {n: sa.bindparam(f"{n}_{i}", type_=columns[n].type) for n in spec.names} | constants
        for i in range(count)
    ]
    return sa.insert(spec.table).values(rows).returning(*(columns[n] for n in returned))


def _bound(bind: Processor, value: Any) -> Any:
    return value if bind is None or value is None else bind(value)


def _in_given_order(plan: _Plan, returned: list[Any], count: int) -> list[Row | None]:
    if not returned:
        return [None] * count
    assert len(returned) == count, "an INSERT ... SELECT stores all of its rows or none"
    if "id" in plan.returned:
        position = plan.returned.index("id")
        returned.sort(key=lambda row: row[position])
    return list(returned)


_PLANS: dict[tuple[Spec, str], _Plan] = {}
#: PostgreSQL's type ids, which result processors may ask for (asyncpg's numeric does).
_NUMERIC_OID, _FLOAT8_OID = 1700, 701


def _plan(spec: Spec, dialect: sa.Dialect) -> _Plan:
    """The statement of `spec` for `dialect`, and how to convert what goes in and out."""
    key = (spec, dialect.name)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= MAX_SPECS:
            _PLANS.clear()
        columns = spec.table.c
        returned = tuple(n for n in spec.returning if n not in spec.constants)
        layout = tuple(
            (True, returned.index(n)) if n in returned else (False, spec.constants.index(n))
            for n in spec.returning
        )
        sqlite = dialect.name == "sqlite"
        plan = _PLANS[key] = _Plan(
            statement=_statement(spec, returned, dialect.name),
            returned=returned,
            layout=layout,
            processors=tuple(_result_processor(columns[n], dialect) for n in returned),
            array_binds=tuple(
                None if sqlite else columns[n].type.dialect_impl(dialect).bind_processor(dialect)
                for n in spec.names
            ),
            # SQLite: bound once here, the statement takes them as they are; PostgreSQL
            # binds them once itself (the statement has one of each).
            constant_binds=tuple(
                columns[n].type.dialect_impl(dialect).bind_processor(dialect) if sqlite else None
                for n in spec.constants
            ),
            constant_results=tuple(_round_trip(columns[n], dialect) for n in spec.constants),
        )
    return plan


def _round_trip(column: sa.Column[Any], dialect: sa.Dialect) -> Processor:
    """What reading a constant back gives, from its bound form (SQLite) or its value."""
    result = _result_processor(column, dialect)
    if dialect.name == "sqlite":
        return result
    bind = column.type.dialect_impl(dialect).bind_processor(dialect)
    if bind is None:
        return result
    if result is None:
        return bind
    return lambda value: result(bind(value))


def _result_processor(column: sa.Column[Any], dialect: sa.Dialect) -> Processor:
    numeric = isinstance(column.type, sa.Numeric) or isinstance(
        getattr(column.type, "impl_instance", None), sa.Numeric
    )
    float_ = isinstance(column.type, sa.Float)
    coltype = (_FLOAT8_OID if float_ else _NUMERIC_OID) if numeric else None
    return column.type.dialect_impl(dialect).result_processor(dialect, coltype)


def _statement(spec: Spec, returned: tuple[str, ...], dialect_name: str) -> Any:
    """`INSERT INTO t (names, constants) SELECT ... [WHERE EXISTS guard] RETURNING ...`,
    from bound values (SQLite, one row) or from one array per column (PostgreSQL, every
    row)."""
    columns = spec.table.c
    values: list[Any]
    if dialect_name == "postgresql":
        # Bound as they are (see `_Plan.array_binds`), cast to arrays of the columns' types.
        arrays = [
            sa.cast(sa.bindparam(n, type_=sa.types.NullType()), postgresql.ARRAY(columns[n].type))
            for n in spec.names
        ]
        given = (
            sa.func.unnest(*arrays)
            .table_valued(*spec.names, with_ordinality="conveyor_n")
            .render_derived()
        )
        values = [given.c[n] for n in spec.names]
        values += [
            sa.cast(sa.bindparam(f"c_{n}", type_=columns[n].type), columns[n].type)
            for n in spec.constants
        ]
        source = sa.select(*values).order_by(given.c.conveyor_n)
    else:
        values = [sa.bindparam(n, type_=columns[n].type) for n in spec.names]
        values += [sa.bindparam(f"c_{n}", type_=sa.types.NullType()) for n in spec.constants]
        source = sa.select(*values)
    if spec.guard_table is not None:
        table = spec.guard_table
        source = source.where(
            sa.select(table.c[spec.guard_names[0]])
            .where(*(table.c[n] == sa.bindparam(f"g_{n}") for n in spec.guard_names))
            .exists()
        )
    return (
        sa.insert(spec.table)
        .from_select([*spec.names, *spec.constants], source)
        .returning(*(columns[n] for n in returned))
    )
