"""Running a query one page at a time: ORDER BY, keyset conditions, counting.

NULLs sort as the greatest value (after everything ascending, first descending), the
same on both databases, and the record id breaks ties in the direction of the last
sort key, so that one index on `(field, id)` serves a sort and its keyset in both
directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.storage.model import SYSTEM_FIELDS, TableDef
from conveyor.storage.query import Query, SortKey, encode_cursor, where
from conveyor.storage.schema import SEARCH_COLUMN


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None


@dataclass(frozen=True)
class _Key:
    expression: sa.ColumnElement[Any]
    descending: bool
    nullable: bool

    def ordering(self) -> sa.UnaryExpression[Any]:
        if self.descending:
            return self.expression.desc().nulls_first()
        return self.expression.asc().nulls_last()

    def bind(self, value: Any) -> sa.BindParameter[Any]:
        # A typed parameter: plain True/False would only be allowed with = and IS.
        return sa.bindparam(None, value, type_=self.expression.type)

    def tie(self, value: Any) -> sa.ColumnElement[bool]:
        return self.expression.is_(None) if value is None else self.expression == self.bind(value)

    def beyond(self, value: Any) -> sa.ColumnElement[bool]:
        """The rows that sort strictly after `value` on this key alone."""
        if value is None:
            return self.expression.is_not(None) if self.descending else sa.false()
        if self.descending:
            return self.expression < self.bind(value)
        after = self.expression > self.bind(value)
        return sa.or_(after, self.expression.is_(None)) if self.nullable else after

    def bound(self, value: Any) -> sa.ColumnElement[bool] | None:
        """A looser condition implied by `beyond or tie`, which an index can seek on."""
        if value is None:
            return None if self.descending else self.expression.is_(None)
        if self.descending:
            return self.expression <= self.bind(value)
        at_least = self.expression >= self.bind(value)
        return sa.or_(at_least, self.expression.is_(None)) if self.nullable else at_least


def _keys(table: TableDef, sort: list[SortKey], score: Any) -> list[_Key]:
    keys = []
    for key in sort:
        if key.field is None:
            keys.append(_Key(score, key.descending, False))
        else:
            column = table.sql.c[key.field.name]
            keys.append(_Key(column, key.descending, key.field.name not in SYSTEM_FIELDS))
    return keys


def after(keys: list[_Key], values: list[Any]) -> sa.ColumnElement[bool]:
    """Rows strictly after the row whose sort values are `values`."""
    alternatives = []
    for i, key in enumerate(keys):
        ties = [keys[j].tie(values[j]) for j in range(i)]
        alternatives.append(sa.and_(*ties, key.beyond(values[i])))
    condition = sa.or_(*alternatives)
    bound = keys[0].bound(values[0])
    return condition if bound is None else sa.and_(bound, condition)


def parts(keys: list[_Key], values: list[Any]) -> list[sa.ColumnElement[bool]]:
    """`after(keys, values)` as consecutive ranges, each one an index can seek to.

    Where the rows after the cursor span both the NULLs and the values of the first
    key, one OR across the two would make PostgreSQL scan from the start of the index;
    two queries, each on its own side, keep every page as cheap as the first.
    """
    first, value = keys[0], values[0]
    column = first.expression
    if _pair(keys) and value is not None:
        # (field, id) after (value, id): a row comparison PostgreSQL seeks to directly.
        row = sa.tuple_(column, keys[1].expression)
        cursor = sa.tuple_(first.bind(value), keys[1].bind(values[1]))
        beyond = row < cursor if first.descending else row > cursor
        return [beyond, column.is_(None)] if first.nullable and not first.descending else [beyond]
    if not first.nullable or len(keys) == 1:
        return [after(keys, values)]
    rest = after(keys[1:], values[1:])
    if not first.descending and value is not None:
        at_least = column >= first.bind(value)
        beyond = sa.or_(column > first.bind(value), sa.and_(first.tie(value), rest))
        return [sa.and_(at_least, beyond), column.is_(None)]
    if first.descending and value is None:
        return [sa.and_(column.is_(None), rest), column.is_not(None)]
    return [after(keys, values)]


def _pair(keys: list[_Key]) -> bool:
    """Whether the sort is one column then the id, both in the same direction."""
    return (
        len(keys) == 2
        and isinstance(keys[0].expression, sa.Column)
        and not keys[1].nullable
        and keys[0].descending == keys[1].descending
    )


async def fetch(conn: AsyncConnection, table: TableDef, query: Query) -> Page:
    conditions, score = where(table, query)
    keys = _keys(table, query.sort, score)
    columns = [c for c in table.sql.c if c.name != SEARCH_COLUMN]
    labels = [k.expression.label(f"_k{i}") for i, k in enumerate(keys)]
    statement = (
        sa.select(*columns, *labels)
        .where(*conditions)
        .order_by(*(k.ordering() for k in keys))
        .offset(query.offset or None)
    )
    ranges = [sa.true()] if query.cursor is None else parts(keys, query.cursor)
    result: list[sa.Row[Any]] = []
    for condition in ranges:
        wanted = query.limit + 1 - len(result)
        result += (await conn.execute(statement.where(condition).limit(wanted))).all()
        if len(result) > query.limit:
            break
    more = len(result) > query.limit
    result = result[: query.limit]
    rows = [{c.name: row[i] for i, c in enumerate(columns)} for row in result]
    next_cursor = None
    if more and result:
        last = result[-1]
        values = [last[len(columns) + i] for i in range(len(keys))]
        next_cursor = encode_cursor(query.sort, query.q, values)
    total = await count(conn, table, conditions) if query.count else None
    return Page(rows, next_cursor, total)


async def count(
    conn: AsyncConnection, table: TableDef, conditions: list[sa.ColumnElement[bool]]
) -> int:
    statement = sa.select(sa.func.count()).select_from(table.sql).where(*conditions)
    return int((await conn.execute(statement)).scalar_one())
