"""Checking a record before it is written: types, field options, then rules.

Every problem is collected, so that a client fixes a record in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.exceptions import ValidationError
from conveyor.storage.fields import FieldType
from conveyor.storage.model import SYSTEM_FIELDS, TableDef
from conveyor.storage.rules import evaluate, field_accesses
from conveyor.storage.values import Invalid, coerce

Problem = dict[str, Any]


@dataclass(frozen=True)
class Checked:
    #: The values to write (the whole record on create, the changed fields on update).
    values: dict[str, Any]
    #: The record as it will be: every user field, absent ones as None.
    record: dict[str, Any]


async def check(
    table: TableDef, data: object, previous: Mapping[str, Any] | None = None
) -> tuple[Checked | None, list[Problem]]:
    """Check `data` (a create when `previous` is None, else a partial update)."""
    if not isinstance(data, dict):
        return None, [_problem(None, "a record is a JSON object of field values")]
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key in SYSTEM_FIELDS:
            problems.append(_problem(key, "is a system field and cannot be written"))
        elif key not in table.field_map:
            problems.append(_problem(str(key)[:100], "unknown field"))
        else:
            try:
                values[key] = coerce(table.field_map[key], raw)
            except Invalid as exc:
                problems.append(_problem(key, str(exc)))
    if previous is None:
        for field in table.fields:
            if field.name not in data and field.default is not None:
                values[field.name] = coerce(field, field.default)
    base = {f.name: (previous or {}).get(f.name) for f in table.fields}
    record = base | values
    bad = {p["field"] for p in problems}
    for field in table.fields:
        if field.required and record[field.name] is None and field.name not in bad:
            problems.append(_problem(field.name, "is required"))
            bad.add(field.name)
    rules = [r for r in table.rules if not bad & {n for n, _ in field_accesses(r.rule.expression)}]
    problems += await evaluate(rules, record, previous)
    if previous is not None:
        values = {k: v for k, v in values.items() if previous.get(k) != v or k not in previous}
    return Checked(values, record), problems


async def check_or_raise(
    table: TableDef, data: object, previous: Mapping[str, Any] | None = None
) -> Checked:
    checked, problems = await check(table, data, previous)
    if problems:
        raise invalid(problems)
    assert checked is not None
    return checked


def invalid(problems: list[Problem]) -> ValidationError:
    first = problems[0]
    where = first.get("field") or first.get("rule") or "record"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ValidationError(f"{where}: {first['message']}{more}", details=problems)


def references(table: TableDef, record: Mapping[str, Any]) -> dict[str, int]:
    """The reference fields of `record` that hold an id."""
    return {
        f.name: record[f.name]
        for f in table.fields
        if f.type is FieldType.REFERENCE and record.get(f.name) is not None
    }


def _problem(field: str | None, message: str) -> Problem:
    return {"field": field, "rule": None, "message": message}
