"""Adding, changing and deleting fields, safely on tables that hold records.

A change either keeps every stored value valid, or it is refused (409) with the reason
and a few of the record ids in the way. Nothing is dropped silently: deleting a field
that holds values needs `force`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db.tables import storage_fields, storage_tables
from conveyor.exceptions import Conflict, ValidationError
from conveyor.storage import convert, schema, search
from conveyor.storage.fields import LENGTH_BOUNDED, TEXTUAL, Field, FieldType, parse_field
from conveyor.storage.model import TableDef
from conveyor.storage.rules import field_accesses
from conveyor.storage.tables import Tables, check_default, fail, problem
from conveyor.storage.values import Invalid, coerce, to_json

_SAMPLE = 5
#: Called as on_rename(conn, table_id, old, new) inside a field rename's transaction.
RenameHook = Callable[[AsyncConnection, str, str, str], Awaitable[None]]


class Fields:
    """Field changes, each in one transaction with the catalogue update."""

    def __init__(self, tables: Tables, on_rename: list[RenameHook] | None = None) -> None:
        self.tables = tables
        #: What else names fields (custom pages) follows a rename in its transaction.
        self.on_rename = on_rename or []
        self.db = tables.db
        self.catalog = tables.catalog

    async def add(self, name: str, spec: object) -> TableDef:
        field, problems = parse_field(spec, "")
        problems = [p | {"field": p["field"].lstrip(".")} for p in problems]
        if field is None:
            raise fail(problems)
        if found := check_default(field, ""):
            raise fail([p | {"field": "default"} for p in found])
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, name, lock="update")
            if field.name in table.field_map:
                raise Conflict(f"table {name!r} already has a field named {field.name!r}")
            if field.required and field.default is None and await self.tables.count(conn, table):
                raise Conflict(
                    f"table {name!r} has records, which would have no {field.name!r}: "
                    "give the new required field a default, or add it as optional first"
                )
            targets = await self.tables.targets(conn, table, [field])
            new = replace(table, fields=(*table.fields, field))
            if field.searchable:
                await search.uninstall(conn, table)
            await schema.add_column(conn, table.sql_name, field, targets.get(field.name))
            if field.default is not None and field.required:
                column = new.sql.c[field.name]
                await conn.execute(
                    sa.update(new.sql).values({column: coerce(field, field.default)})
                )
            if field.searchable:
                await search.install(conn, new)
            row = {
                "table_id": table.id,
                "name": field.name,
                "position": await _next_position(conn, table),
            }
            await conn.execute(
                sa.insert(storage_fields).values(
                    **row, type=field.type.value, label=field.label, options=field.options()
                )
            )
            return await self.tables.bump(conn, table)

    async def update(self, name: str, field_name: str, spec: dict[str, Any]) -> TableDef:
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, name, lock="update")
            old = table.field(field_name)
            merged = _carried(old, spec) | spec
            new, problems = parse_field(merged, "")
            problems = [p | {"field": p["field"].lstrip(".")} for p in problems]
            if new is None:
                raise fail(problems)
            if found := check_default(new, ""):
                raise fail([p | {"field": "default"} for p in found])
            if new.name != old.name:
                self._check_rename(table, old, new)
            changed = replace(table, fields=tuple(new if f is old else f for f in table.fields))
            await self._apply(conn, table, changed, old, new)
            await conn.execute(
                sa.update(storage_fields)
                .where(storage_fields.c.table_id == table.id, storage_fields.c.name == old.name)
                .values(name=new.name, type=new.type.value, label=new.label, options=new.options())
            )
            if new.name != old.name:
                await self._renamed(conn, table, old.name, new.name)
            return await self.tables.bump(conn, table)

    async def delete(self, name: str, field_name: str, *, force: bool = False) -> TableDef:
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, name, lock="update")
            field = table.field(field_name)
            users = [r.rule.name for r in table.rules if _mentions(r.rule.expression, field.name)]
            if users:
                raise Conflict(
                    f"rules {', '.join(users)} use field {field_name!r}; "
                    "delete or change them first"
                )
            self._check_droppable(field)
            held = await _count_values(conn, table, field)
            if held and not force:
                raise Conflict(
                    f"{held} records have a value for {field_name!r}; "
                    "delete with ?force=true to drop the field and its values"
                )
            remaining = tuple(f for f in table.fields if f is not field)
            if field.searchable:
                await search.uninstall(conn, table)
            await schema.drop_column(conn, table.sql_name, field)
            if field.searchable:
                await search.install(conn, replace(table, fields=remaining))
            await conn.execute(
                sa.delete(storage_fields).where(
                    storage_fields.c.table_id == table.id, storage_fields.c.name == field.name
                )
            )
            # The table's display field goes back to the one chosen for it.
            changes = {"display_field": None} if table.display_field == field.name else {}
            return await self.tables.bump(conn, table, **changes)

    async def _renamed(self, conn: AsyncConnection, table: TableDef, old: str, new: str) -> None:
        if table.display_field == old:
            await conn.execute(
                sa.update(storage_tables)
                .where(storage_tables.c.id == table.id)
                .values(display_field=new)
            )
        for hook in self.on_rename:
            await hook(conn, table.id, old, new)

    def _check_droppable(self, field: Field) -> None:
        if field.type is FieldType.REFERENCE and self.db.dialect == "sqlite":
            raise Conflict(
                "SQLite cannot drop a column that holds a foreign key; on SQLite a reference "
                "field stays (as it is) until its table is deleted"
            )

    def _check_rename(self, table: TableDef, old: Field, new: Field) -> None:
        if new.name in table.field_map:
            raise Conflict(f"table {table.name!r} already has a field named {new.name!r}")
        users = [r.rule.name for r in table.rules if _mentions(r.rule.expression, old.name)]
        if users:
            raise ValidationError(
                f"rules {', '.join(users)} use {old.name!r}; change them before renaming",
                details=[problem("name", f"used by rule {r}", r) for r in users],
            )

    async def _apply(
        self, conn: AsyncConnection, table: TableDef, changed: TableDef, old: Field, new: Field
    ) -> None:
        keep_column = convert.same_storage(old, new)
        empty = not keep_column and not await self.tables.count(conn, table)
        if not keep_column and not empty and convert.converter(old, new) is None:
            raise Conflict(
                f"cannot change {old.name!r} from {_describe(old)} to {_describe(new)} while "
                "the table holds records: add a new field, copy the values, then delete this one"
            )
        await self._check_values(conn, table, old, new)
        search_change = [f.name for f in table.searchable] != [f.name for f in changed.searchable]
        moved = new.name != old.name or not keep_column
        reindex = search_change or (new.searchable and moved)
        if reindex:
            await search.uninstall(conn, table)
        if empty:
            self._check_droppable(old)
            await schema.drop_column(conn, table.sql_name, old)
            targets = await self.tables.targets(conn, changed, [new])
            await schema.add_column(conn, table.sql_name, new, targets.get(new.name))
        elif not keep_column:
            await convert.rewrite(conn, table, old, new)
        else:
            if new.name != old.name:
                await schema.rename_column(conn, table.sql_name, old, new)
            if (old.unique, old.indexed) != (new.unique, new.indexed):
                await schema.drop_indexes(conn, table.sql_name, new)
                await schema.create_indexes(conn, table.sql_name, new)
        if reindex:
            await search.install(conn, changed)

    async def _check_values(
        self, conn: AsyncConnection, table: TableDef, old: Field, new: Field
    ) -> None:
        """Refuse a change that stored values would break (409 with a few ids)."""
        column = table.sql.c[old.name]
        if new.required and not old.required:
            query = sa.select(table.sql.c.id).where(column.is_(None)).limit(_SAMPLE)
            ids = list((await conn.execute(query)).scalars())
            if ids:
                raise _blocked(new, "have no value, and the field would be required", ids)
        if new.unique and not old.unique:
            query = (
                sa.select(column)
                .where(column.is_not(None))
                .group_by(column)
                .having(sa.func.count() > 1)
                .limit(_SAMPLE)
            )
            duplicates = [to_json(old, v) for v in (await conn.execute(query)).scalars()]
            if duplicates:
                raise Conflict(
                    f"cannot make {new.name!r} unique: values {duplicates} appear more than once",
                    details=[problem(new.name, "duplicate values exist")],
                )
        to_new = convert.converter(old, new)
        if to_new is None:
            return  # only on an empty table (checked above)
        bad: list[int] = []
        async for rows in convert.stored(conn, table, old):
            for record_id, value in rows:
                try:
                    to_new(value)
                except Invalid:
                    bad.append(record_id)
            if len(bad) >= _SAMPLE:
                break
        if bad:
            raise _blocked(new, "hold values the changed field would refuse", bad[:_SAMPLE])


def _carried(old: Field, spec: dict[str, Any]) -> dict[str, Any]:
    """The old definition's options that still mean the same under the new type."""
    current = old.to_json()
    try:
        new_type = FieldType(spec.get("type", old.type.value))
    except ValueError:
        return current  # parse_field reports the unknown type
    if new_type is old.type:
        return current
    kept = {"name", "label", "required", "indexed"}
    if new_type in TEXTUAL and old.type in TEXTUAL:
        kept |= {"unique", "searchable", "default"}
    if new_type in LENGTH_BOUNDED and old.type in LENGTH_BOUNDED:
        kept |= {"min", "max", "pattern"}
    if new_type not in (FieldType.JSON, FieldType.BOOLEAN):
        kept.add("unique")
    if new_type is FieldType.JSON:
        kept.discard("indexed")
    return {k: v for k, v in current.items() if k in kept}


def _blocked(field: Field, why: str, ids: list[int]) -> Conflict:
    shown = ", ".join(map(str, ids)) + (" and maybe more" if len(ids) >= _SAMPLE else "")
    return Conflict(
        f"cannot change {field.name!r}: records {shown} {why}",
        details=[problem(field.name, why)],
    )


def _describe(field: Field) -> str:
    if field.type.value == "decimal":
        return f"decimal({field.precision},{field.scale})"
    if field.type.value == "reference":
        return f"reference to {field.table} (on delete {field.on_delete})"
    return field.type.value


def _mentions(expression: str, field_name: str) -> bool:
    return any(name == field_name for name, _ in field_accesses(expression))


async def _next_position(conn: AsyncConnection, table: TableDef) -> int:
    query = sa.select(sa.func.coalesce(sa.func.max(storage_fields.c.position), -1)).where(
        storage_fields.c.table_id == table.id
    )
    return int((await conn.execute(query)).scalar_one()) + 1


async def _count_values(conn: AsyncConnection, table: TableDef, field: Field) -> int:
    column = table.sql.c[field.name]
    query = sa.select(sa.func.count()).select_from(table.sql).where(column.is_not(None))
    return int((await conn.execute(query)).scalar_one())
