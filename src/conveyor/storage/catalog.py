"""The catalogue of user tables, read from the platform tables and cached per process.

Every change to a table's definition bumps its `version`. Readers and writers read
the version (one indexed lookup) inside their own transaction and rebuild their
cached definition when it moved, so that a change made by another process is seen
at once. On PostgreSQL, writers hold a share lock on the catalogue row for the
length of their transaction and definition changes an exclusive one, so that a
column never disappears under a write in flight; SQLite's write lock does the same.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db.tables import storage_fields, storage_rules, storage_tables
from conveyor.exceptions import TableNotFound
from conveyor.storage.fields import Field
from conveyor.storage.model import TableDef
from conveyor.storage.rules import CompiledRule, Rule, compile_rule


class Catalog:
    """Loads table definitions, keeping the newest version of each in memory."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self._cache: dict[str, TableDef] = {}

    async def get(self, conn: AsyncConnection, name: str, *, lock: str | None = None) -> TableDef:
        """The current definition of table `name`.

        `lock` is None for reads, "share" for record writes and "update" for changes
        to the definition (PostgreSQL row locks; SQLite's write lock covers both).
        """
        query = sa.select(storage_tables.c.id, storage_tables.c.version).where(
            storage_tables.c.name == name
        )
        if lock and self.dialect == "postgresql":
            query = query.with_for_update(read=lock == "share")
        row = (await conn.execute(query)).first()
        if row is None:
            self._cache.pop(name, None)
            raise TableNotFound(f"no table named {name!r}")
        cached = self._cache.get(name)
        if cached is not None and (cached.id, cached.version) == (row.id, row.version):
            return cached
        table = await self._load(conn, row.id)
        self._cache[name] = table
        return table

    def cached(self, name: str) -> TableDef | None:
        """The definition last loaded, possibly stale: check its version before trusting it."""
        return self._cache.get(name)

    async def all(self, conn: AsyncConnection) -> list[TableDef]:
        names = await conn.execute(sa.select(storage_tables.c.name).order_by(storage_tables.c.name))
        return [await self.get(conn, name) for name in names.scalars()]

    async def exists(self, conn: AsyncConnection, name: str) -> bool:
        query = sa.select(storage_tables.c.id).where(storage_tables.c.name == name)
        return (await conn.execute(query)).first() is not None

    async def referencing(self, conn: AsyncConnection, name: str) -> list[tuple[str, str]]:
        """(table, field) pairs of the reference fields that point to table `name`."""
        return [
            (other.name, field.name)
            for other in await self.all(conn)
            for field in other.fields
            if field.table == name and other.name != name
        ]

    async def _load(self, conn: AsyncConnection, table_id: str) -> TableDef:
        row = (
            await conn.execute(sa.select(storage_tables).where(storage_tables.c.id == table_id))
        ).one()
        field_rows = await conn.execute(
            sa.select(storage_fields)
            .where(storage_fields.c.table_id == table_id)
            .order_by(storage_fields.c.position)
        )
        fields = tuple(Field.from_row(f.name, f.type, f.label, dict(f.options)) for f in field_rows)
        rule_rows = await conn.execute(
            sa.select(storage_rules)
            .where(storage_rules.c.table_id == table_id)
            .order_by(storage_rules.c.position)
        )
        names = [f.name for f in fields]
        rules = tuple(_compiled(Rule(r.name, r.expression, r.message), names) for r in rule_rows)
        return TableDef(
            id=row.id,
            name=row.name,
            sql_name=row.sql_name,
            label=row.label,
            description=row.description,
            version=row.version,
            fields=fields,
            rules=rules,
            created_at=row.created_at,
            updated_at=row.updated_at,
            dialect=self.dialect,
            display_field=row.display_field,
        )


def _compiled(rule: Rule, field_names: list[str]) -> CompiledRule:
    compiled, problems = compile_rule(rule, field_names)
    if compiled is None:
        # Saved rules were checked when saved; a field rename or deletion checks them too.
        raise RuntimeError(f"stored rule {rule.name!r} no longer compiles: {problems}")
    return compiled


def field_row(table_id: str, position: int, field: Field) -> dict[str, Any]:
    return {
        "table_id": table_id,
        "name": field.name,
        "position": position,
        "type": field.type.value,
        "label": field.label,
        "options": field.options(),
    }


def rule_row(table_id: str, position: int, rule: Rule) -> dict[str, Any]:
    return {
        "table_id": table_id,
        "name": rule.name,
        "position": position,
        "expression": rule.expression,
        "message": rule.message,
    }
