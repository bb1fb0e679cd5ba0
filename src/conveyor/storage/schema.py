"""DDL for user tables: create and drop tables, add, drop and rename columns, indexes.

Every statement is built by SQLAlchemy, which quotes identifiers; the few statements
SQLAlchemy Core has no construct for (ALTER TABLE ... ADD/DROP/RENAME COLUMN) are
small DDL elements compiled with the dialect's own identifier preparer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import DropIndex, DropTable, ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from conveyor.db.types import UTCDateTime
from conveyor.storage.fields import Field, FieldType
from conveyor.storage.names import index_name

if TYPE_CHECKING:
    from conveyor.storage.model import TableDef

#: PostgreSQL only: the generated tsvector column that full-text search reads.
SEARCH_COLUMN = "_search"
_ON_DELETE = {"restrict": "RESTRICT", "cascade": "CASCADE", "set_null": "SET NULL"}


def _system_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def record_table(table: TableDef) -> sa.Table:
    """The SQL table of `table`, as queries see it."""
    columns = _system_columns() + [sa.Column(f.name, f.sql_type()) for f in table.fields]
    if table.dialect == "postgresql" and table.searchable:
        columns.append(sa.Column(SEARCH_COLUMN, TSVECTOR()))
    return sa.Table(table.sql_name, sa.MetaData(), *columns)


def field_column(sql_table: str, field: Field, target: str | None) -> sa.Column[Any]:
    """The column of `field`; `target` is the SQL table a reference points to."""
    if field.type is not FieldType.REFERENCE:
        return sa.Column(field.name, field.sql_type())
    assert target is not None and field.on_delete is not None
    foreign_key = sa.ForeignKey(
        f"{target}.id",
        name=index_name("fk", sql_table, field.name),
        ondelete=_ON_DELETE[field.on_delete],
    )
    return sa.Column(field.name, field.sql_type(), foreign_key)


async def create_table(conn: AsyncConnection, table: TableDef, targets: dict[str, str]) -> None:
    """Create the SQL table of `table`; `targets` maps reference fields to SQL tables."""
    metadata = sa.MetaData()
    for target in set(targets.values()) - {table.sql_name}:
        sa.Table(target, metadata, sa.Column("id", sa.BigInteger(), primary_key=True))
    columns = [field_column(table.sql_name, f, targets.get(f.name)) for f in table.fields]
    sql_table = sa.Table(table.sql_name, metadata, *_system_columns(), *columns)
    await conn.run_sync(lambda sync: sql_table.create(sync))
    for field in table.fields:
        await create_indexes(conn, table.sql_name, field)


async def drop_table(conn: AsyncConnection, sql_name: str) -> None:
    await conn.execute(DropTable(sa.Table(sql_name, sa.MetaData()), if_exists=True))


async def add_column(
    conn: AsyncConnection, sql_table: str, field: Field, target: str | None
) -> None:
    await conn.execute(AddColumn(sql_table, field_column(sql_table, field, target)))
    await create_indexes(conn, sql_table, field)


async def drop_column(conn: AsyncConnection, sql_table: str, field: Field) -> None:
    await drop_indexes(conn, sql_table, field)
    await conn.execute(DropColumn(sql_table, field.name))


async def rename_column(conn: AsyncConnection, sql_table: str, old: Field, new: Field) -> None:
    await drop_indexes(conn, sql_table, old)
    await conn.execute(RenameColumn(sql_table, old.name, new.name))
    await create_indexes(conn, sql_table, new)


def field_indexes(sql_table: str, field: Field) -> list[sa.Index]:
    """The indexes `field` asks for. Plain indexes end with `id`, the keyset tie-breaker."""
    table = sa.Table(
        sql_table,
        sa.MetaData(),
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(field.name, field.sql_type()),
    )
    column = table.c[field.name]
    indexes = []
    if field.unique:
        indexes.append(sa.Index(index_name("uq", sql_table, field.name), column, unique=True))
    if field.indexed or field.type is FieldType.REFERENCE:
        indexes.append(sa.Index(index_name("ix", sql_table, field.name), column, table.c.id))
    return indexes


async def create_indexes(conn: AsyncConnection, sql_table: str, field: Field) -> None:
    for index in field_indexes(sql_table, field):
        await conn.run_sync(index.create)


async def drop_indexes(conn: AsyncConnection, sql_table: str, field: Field) -> None:
    """Drop every index a field may have had (whatever its options were)."""
    every = field.with_changes(unique=True, indexed=True)
    for index in field_indexes(sql_table, every):
        await conn.execute(DropIndex(index, if_exists=True))


class AddColumn(ExecutableDDLElement):
    def __init__(self, table: str, column: sa.Column[Any]) -> None:
        self.table = table
        self.column = column
        # The column needs a table for its type to compile; it is not otherwise used.
        sa.Table(table, sa.MetaData(), column)


class DropColumn(ExecutableDDLElement):
    def __init__(self, table: str, column: str) -> None:
        self.table = table
        self.column = column


class RenameColumn(ExecutableDDLElement):
    def __init__(self, table: str, old: str, new: str) -> None:
        self.table = table
        self.old = old
        self.new = new


@compiles(AddColumn)
def _add_column(element: AddColumn, compiler: DDLCompiler, **kw: Any) -> str:
    quote = compiler.preparer.quote
    spec = compiler.get_column_specification(element.column)
    for fk in element.column.foreign_keys:
        # Inline, so that SQLite (which cannot ALTER constraints) gets it too.
        target = fk.target_fullname.split(".")[0]
        spec += f" CONSTRAINT {quote(str(fk.name))} REFERENCES {quote(target)} (id)"
        spec += f" ON DELETE {fk.ondelete}"
    return f"ALTER TABLE {quote(element.table)} ADD COLUMN {spec}"


@compiles(DropColumn)
def _drop_column(element: DropColumn, compiler: DDLCompiler, **kw: Any) -> str:
    quote = compiler.preparer.quote
    return f"ALTER TABLE {quote(element.table)} DROP COLUMN {quote(element.column)}"


@compiles(RenameColumn)
def _rename_column(element: RenameColumn, compiler: DDLCompiler, **kw: Any) -> str:
    quote = compiler.preparer.quote
    return (
        f"ALTER TABLE {quote(element.table)} "
        f"RENAME COLUMN {quote(element.old)} TO {quote(element.new)}"
    )
