"""Converting stored values when a field changes type, on tables that hold records.

A conversion is exact or it does not happen: every stored value is converted and
checked against the new definition first, and the column is rewritten only when all
of them fit. Any value can become text (or json); text becomes a number, a date...
when every stored text parses; integers widen to decimals. References and json
values do not convert.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.storage import schema
from conveyor.storage.fields import TEXTUAL, Field, FieldType
from conveyor.storage.model import TableDef
from conveyor.storage.names import short_name
from conveyor.storage.schema import RenameColumn
from conveyor.storage.values import check_options, coerce, from_text, to_json

BATCH = 1000
#: Options whose change alters the SQL column itself.
STORAGE = ("type", "precision", "scale", "table", "on_delete")
Converter = Callable[[Any], Any]


def converter(old: Field, new: Field) -> Converter | None:
    """How a stored value of `old` becomes one of `new` (raising `Invalid`), if it can."""
    if FieldType.REFERENCE in (old.type, new.type):
        return None
    if old.type is FieldType.JSON and new.type is not FieldType.JSON:
        return None
    if new.type is FieldType.JSON:
        return lambda value: coerce(new, to_json(old, value))
    if new.type in TEXTUAL:
        return lambda value: coerce(new, _text(to_json(old, value)))
    if old.type in TEXTUAL:
        return lambda value: _checked(new, from_text(new, value))
    return lambda value: coerce(new, to_json(old, value))


def same_storage(old: Field, new: Field) -> bool:
    """Whether the SQL column stays as it is (only the checks on its values change)."""
    if old.type in TEXTUAL and new.type in TEXTUAL:
        return True
    return all(getattr(old, k) == getattr(new, k) for k in STORAGE)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _checked(field: Field, value: Any) -> Any:
    check_options(field, value)
    return value


async def stored(
    conn: AsyncConnection, table: TableDef, field: Field
) -> AsyncIterator[list[tuple[int, Any]]]:
    """The (id, value) pairs of `field` that hold a value, in batches by id.

    No server-side cursor: PostgreSQL refuses to ALTER a table while a cursor over it
    is open in the same session.
    """
    column, last = table.sql.c[field.name], 0
    while True:
        query = (
            sa.select(table.sql.c.id, column)
            .where(column.is_not(None), table.sql.c.id > last)
            .order_by(table.sql.c.id)
            .limit(BATCH)
        )
        rows = [(row[0], row[1]) for row in await conn.execute(query)]
        if rows:
            yield rows
        if len(rows) < BATCH:
            return
        last = rows[-1][0]


async def rewrite(conn: AsyncConnection, table: TableDef, old: Field, new: Field) -> None:
    """Give `old`'s column the type of `new`, converting every value (all known to fit)."""
    convert = converter(old, new)
    assert convert is not None
    temporary = new.with_changes(name=short_name(f"{new.name}__new"), unique=False, indexed=False)
    await schema.drop_indexes(conn, table.sql_name, old)
    await schema.add_column(conn, table.sql_name, temporary, None)
    target = sa.Table(
        table.sql_name,
        sa.MetaData(),
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(temporary.name, temporary.sql_type()),
    )
    statement = (
        sa.update(target)
        .where(target.c.id == sa.bindparam("_id"))
        .values({temporary.name: sa.bindparam("_value")})
    )
    async for rows in stored(conn, table, old):
        batch = [{"_id": record_id, "_value": convert(value)} for record_id, value in rows]
        await conn.execute(statement, batch)
    await schema.drop_column(conn, table.sql_name, old)
    await conn.execute(RenameColumn(table.sql_name, temporary.name, new.name))
    await schema.create_indexes(conn, table.sql_name, new)
