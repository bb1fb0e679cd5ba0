"""A user table as the records code sees it: its fields, rules and SQL table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from conveyor.exceptions import FieldNotFound
from conveyor.storage.fields import Field, FieldType
from conveyor.storage.rules import CompiledRule
from conveyor.storage.schema import SEARCH_COLUMN, record_table
from conveyor.storage.values import to_json

#: The system fields, described like user fields so that filters and sorting treat
#: them alike.
SYSTEM_FIELDS: dict[str, Field] = {
    "id": Field("id", FieldType.INTEGER, "Id"),
    "created_at": Field("created_at", FieldType.DATETIME, "Created at"),
    "updated_at": Field("updated_at", FieldType.DATETIME, "Updated at"),
}


@dataclass(frozen=True)
class TableDef:
    """A user table at one `version` of its definition."""

    id: str
    name: str
    sql_name: str
    label: str
    description: str | None
    version: int
    fields: tuple[Field, ...]
    rules: tuple[CompiledRule, ...]
    created_at: datetime
    updated_at: datetime
    dialect: str
    #: The field that names a record (in links, lists and pickers); None: chosen for it.
    display_field: str | None = None

    @cached_property
    def field_map(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @cached_property
    def queryable(self) -> dict[str, Field]:
        """Every field a query may name: system fields first, then the user's."""
        return SYSTEM_FIELDS | self.field_map

    def field(self, name: str) -> Field:
        try:
            return self.field_map[name]
        except KeyError:
            raise FieldNotFound(f"table {self.name!r} has no field {name!r}") from None

    @property
    def searchable(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.searchable)

    @cached_property
    def sql(self) -> sa.Table:
        """The SQL table, for queries (the DDL lives in `schema`)."""
        return record_table(self)

    @cached_property
    def stored(self) -> tuple[sa.Column[Any], ...]:
        """The columns a record is read from (not the search column PostgreSQL derives)."""
        return tuple(c for c in self.sql.c if c.name != SEARCH_COLUMN)

    def record(self, row: Mapping[str, Any] | sa.RowMapping) -> dict[str, Any]:
        """A stored row as the API returns it: system fields first, JSON-ready values."""
        return {
            name: to_json(field, row.get(name))
            for name, field in self.queryable.items()
            if name != SEARCH_COLUMN
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "display_field": self.display_field,
            "fields": [f.to_json() for f in self.fields],
            "rules": [r.rule.to_json() for r in self.rules],
            "system_fields": list(SYSTEM_FIELDS),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
