"""Creating, changing and deleting tables and their rules (scope `admin`)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db import Database
from conveyor.db.tables import storage_fields, storage_rules, storage_tables
from conveyor.db.types import utcnow
from conveyor.exceptions import Conflict, RuleNotFound, ValidationError
from conveyor.storage import schema, search
from conveyor.storage.catalog import Catalog, field_row, rule_row
from conveyor.storage.fields import Field, FieldType, parse_field
from conveyor.storage.model import TableDef
from conveyor.storage.names import name_problem, sql_table_name
from conveyor.storage.rules import CompiledRule, parse_rule
from conveyor.storage.values import Invalid, coerce

MAX_FIELDS = 200
MAX_RULES = 100
Problem = dict[str, Any]


def problem(field: str | None, message: str, rule: str | None = None) -> Problem:
    return {"field": field, "rule": rule, "message": message}


def fail(problems: list[Problem]) -> ValidationError:
    summary = "; ".join(f"{p['field'] or p['rule']}: {p['message']}" for p in problems[:5])
    return ValidationError(summary, details=problems)


def check_default(field: Field, path: str) -> list[Problem]:
    if field.default is None:
        return []
    if field.type is FieldType.REFERENCE:
        return [problem(f"{path}.default", "reference fields have no default")]
    try:
        coerce(field, field.default)
    except Invalid as exc:
        return [problem(f"{path}.default", f"the default {exc}")]
    return []


def parse_fields(specs: object) -> tuple[list[Field], list[Problem]]:
    if not isinstance(specs, list):
        return [], [problem("fields", "must be a list of field definitions")]
    if len(specs) > MAX_FIELDS:
        return [], [problem("fields", f"a table has at most {MAX_FIELDS} fields")]
    fields, problems, seen = [], [], set()
    for i, spec in enumerate(specs):
        field, found = parse_field(spec, f"fields[{i}]")
        problems += found
        name = spec.get("name") if isinstance(spec, dict) else None
        if isinstance(name, str):
            if name in seen:
                problems.append(problem(f"fields[{i}].name", f"duplicate field name {name!r}"))
            seen.add(name)
        if field is None:
            continue
        problems += check_default(field, f"fields[{i}]")
        fields.append(field)
    return fields, problems


def parse_rules(specs: object, field_names: list[str]) -> tuple[list[CompiledRule], list[Problem]]:
    if not isinstance(specs, list):
        return [], [problem("rules", "must be a list of rules")]
    if len(specs) > MAX_RULES:
        return [], [problem("rules", f"a table has at most {MAX_RULES} rules")]
    rules, problems, seen = [], [], set()
    for i, spec in enumerate(specs):
        rule, found = parse_rule(spec, f"rules[{i}]", field_names)
        problems += found
        if rule is not None:
            if rule.rule.name in seen:
                problems.append(problem(f"rules[{i}].name", "duplicate rule name"))
            seen.add(rule.rule.name)
            rules.append(rule)
    return rules, problems


def check_text(spec: dict[str, Any], key: str, limit: int, problems: list[Problem]) -> None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        problems.append(problem(key, f"must be a string of at most {limit} characters"))


#: Types that cannot name a record.
DISPLAY_EXCLUDED = (FieldType.JSON, FieldType.REFERENCE)


def check_display_field(table: TableDef, name: object) -> None:
    """422 unless `name` is a field that can name a record (not json, not a reference)."""
    field = table.field_map.get(name) if isinstance(name, str) else None
    if field is None or field.type in DISPLAY_EXCLUDED:
        usable = [f.name for f in table.fields if f.type not in DISPLAY_EXCLUDED]
        raise fail(
            [problem("display_field", f"one of the table's fields: {', '.join(usable) or 'none'}")]
        )


class Tables:
    """Table definitions: each change is one transaction holding the DDL and the catalogue."""

    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db = db
        self.catalog = catalog
        #: Called with the table's name in the transaction that drops it (append to act
        #: there: the links of the table go with it so).
        self.drop_hooks: list[Callable[[AsyncConnection, str], Awaitable[None]]] = []

    async def list(self) -> list[TableDef]:
        async with self.db.read() as conn:
            return await self.catalog.all(conn)

    async def get(self, name: str) -> TableDef:
        async with self.db.read() as conn:
            return await self.catalog.get(conn, name)

    async def create(self, spec: dict[str, Any]) -> TableDef:
        problems = [
            problem(str(k), "unknown table option")
            for k in spec.keys() - {"name", "label", "description", "fields", "rules"}
        ]
        name = spec.get("name")
        if (error := name_problem(name, what="table")) is not None:
            problems.append(problem("name", error))
        check_text(spec, "label", 200, problems)
        check_text(spec, "description", 2000, problems)
        fields, found = parse_fields(spec.get("fields", []))
        problems += found
        rules, found = parse_rules(spec.get("rules", []), [f.name for f in fields])
        problems += found
        if problems:
            raise fail(problems)
        assert isinstance(name, str)
        now = utcnow()
        table = TableDef(
            id=secrets.token_hex(8),
            name=name,
            sql_name=sql_table_name(name),
            label=spec.get("label") or name,
            description=spec.get("description"),
            version=1,
            fields=tuple(fields),
            rules=tuple(rules),
            created_at=now,
            updated_at=now,
            dialect=self.db.dialect,
        )
        async with self.db.write() as conn:
            if await self.catalog.exists(conn, name):
                raise Conflict(f"a table named {name!r} already exists")
            targets = await self.targets(conn, table, fields)
            await self._insert(conn, table)
            await self._insert_children(conn, table)
            await schema.create_table(conn, table, targets)
            await search.install(conn, table)
            return await self.catalog.get(conn, name)

    async def _insert(self, conn: AsyncConnection, table: TableDef) -> None:
        row = {
            "id": table.id,
            "name": table.name,
            "sql_name": table.sql_name,
            "label": table.label,
            "description": table.description,
            "version": table.version,
            "created_at": table.created_at,
            "updated_at": table.updated_at,
        }
        try:
            await conn.execute(sa.insert(storage_tables).values(row))
        except IntegrityError:  # another process created it since we looked
            raise Conflict(f"a table named {table.name!r} already exists") from None

    async def update(self, name: str, spec: dict[str, Any]) -> TableDef:
        problems = [
            problem(str(k), "unknown table option")
            for k in spec.keys() - {"label", "description", "name", "display_field"}
        ]
        if "name" in spec and spec["name"] != name:
            problems.append(problem("name", "a table cannot be renamed; create a new one"))
        check_text(spec, "label", 200, problems)
        check_text(spec, "description", 2000, problems)
        if problems:
            raise fail(problems)
        changes = {k: spec[k] for k in ("label", "description", "display_field") if k in spec}
        if changes.get("label") is None and "label" in changes:
            changes["label"] = name
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, name, lock="update")
            if (shown := changes.get("display_field")) is not None:
                check_display_field(table, shown)
            return await self.bump(conn, table, **changes)

    async def delete(self, name: str, *, force: bool = False) -> None:
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, name, lock="update")
            referencing = await self.catalog.referencing(conn, name)
            if referencing:
                used = ", ".join(f"{t}.{f}" for t, f in referencing)
                raise Conflict(f"table {name!r} is referenced by {used}; delete those fields first")
            count = await self.count(conn, table)
            if count and not force:
                raise Conflict(
                    f"table {name!r} holds {count} records; delete with ?force=true to drop them"
                )
            await search.uninstall(conn, table)
            await schema.drop_table(conn, table.sql_name)
            await conn.execute(sa.delete(storage_tables).where(storage_tables.c.id == table.id))
            for hook in self.drop_hooks:
                await hook(conn, name)

    async def add_rule(self, name: str, spec: object) -> TableDef:
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, name, lock="update")
            rule, problems = parse_rule(spec, "", list(table.field_map))
            problems = [p | {"field": (p["field"] or ".")[1:] or None} for p in problems]
            if rule is None:
                raise fail(problems)
            if any(r.rule.name == rule.rule.name for r in table.rules):
                raise Conflict(f"table {name!r} already has a rule named {rule.rule.name!r}")
            position = len(table.rules)
            await conn.execute(
                sa.insert(storage_rules).values(rule_row(table.id, position, rule.rule))
            )
            return await self.bump(conn, table)

    async def delete_rule(self, name: str, rule_name: str) -> TableDef:
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, name, lock="update")
            if not any(r.rule.name == rule_name for r in table.rules):
                raise RuleNotFound(f"table {name!r} has no rule named {rule_name!r}")
            await conn.execute(
                sa.delete(storage_rules).where(
                    storage_rules.c.table_id == table.id, storage_rules.c.name == rule_name
                )
            )
            return await self.bump(conn, table)

    async def bump(self, conn: AsyncConnection, table: TableDef, **changes: Any) -> TableDef:
        """Record that `table` changed: a new version, so every process reloads it."""
        await conn.execute(
            sa.update(storage_tables)
            .where(storage_tables.c.id == table.id)
            .values(version=storage_tables.c.version + 1, updated_at=utcnow(), **changes)
        )
        return await self.catalog.get(conn, table.name)

    async def count(self, conn: AsyncConnection, table: TableDef) -> int:
        query = sa.select(sa.func.count()).select_from(table.sql)
        return int((await conn.execute(query)).scalar_one())

    async def targets(
        self, conn: AsyncConnection, table: TableDef, fields: Sequence[Field]
    ) -> dict[str, str]:
        """The SQL table each reference field points to (422 when it does not exist)."""
        targets: dict[str, str] = {}
        problems: list[Problem] = []
        for i, field in enumerate(fields):
            if field.type is not FieldType.REFERENCE:
                continue
            assert field.table is not None
            if field.table == table.name:
                targets[field.name] = table.sql_name
            elif await self.catalog.exists(conn, field.table):
                targets[field.name] = (await self.catalog.get(conn, field.table)).sql_name
            else:
                problems.append(problem(f"fields[{i}].table", f"no table named {field.table!r}"))
        if problems:
            raise fail(problems)
        return targets

    async def _insert_children(self, conn: AsyncConnection, table: TableDef) -> None:
        if table.fields:
            rows = [field_row(table.id, i, f) for i, f in enumerate(table.fields)]
            await conn.execute(sa.insert(storage_fields), rows)
        if table.rules:
            rows = [rule_row(table.id, i, r.rule) for i, r in enumerate(table.rules)]
            await conn.execute(sa.insert(storage_rules), rows)
