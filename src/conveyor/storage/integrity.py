"""Database constraint violations, translated into errors that name the field."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.exceptions import Conflict, UniqueViolation, ValidationError
from conveyor.storage.model import TableDef
from conveyor.storage.names import index_name

if TYPE_CHECKING:
    from conveyor.storage.validate import Checked

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: [^.\s]+\.(\w+)")
_UNIQUE_STATE, _FOREIGN_KEY_STATE = "23505", "23503"


def unique_error(field: str, index: int | None = None) -> dict[str, Any]:
    problem: dict[str, Any] = {
        "field": field,
        "rule": "unique",
        "message": f"a record with this {field} already exists",
    }
    if index is not None:
        problem["index"] = index
    return problem


@contextmanager
def translated(table: TableDef) -> Iterator[None]:
    """Turn unique and foreign-key violations of `table` into 409/422 errors."""
    try:
        yield
    except IntegrityError as exc:
        raise _translate(table, exc) from exc


def _translate(table: TableDef, exc: IntegrityError) -> Exception:
    cause = exc.orig.__cause__ if exc.orig is not None else None
    state = getattr(exc.orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    message = str(exc.orig)
    if state == _UNIQUE_STATE or "UNIQUE constraint failed" in message:
        field = _unique_field(table, getattr(cause, "constraint_name", None), message)
        if field is not None:
            problem = unique_error(field)
            return UniqueViolation(problem["message"], details=[problem])
        return UniqueViolation()
    if state == _FOREIGN_KEY_STATE or "FOREIGN KEY constraint failed" in message:
        detail = str(getattr(cause, "detail", "") or "")
        if "is still referenced" in detail or "DELETE" in str(exc.statement or "").upper()[:10]:
            return Conflict(
                "this record is referenced by records of another table (or this one) "
                "whose reference field does not allow deleting it"
            )
        return ValidationError(
            "a reference points to a record that does not exist",
            details=[{"field": None, "rule": "reference", "message": "no such record"}],
        )
    return Conflict(f"the database refused the write: {message.splitlines()[0][:200]}")


def _unique_field(table: TableDef, constraint: str | None, message: str) -> str | None:
    for field in table.fields:
        if constraint is not None and constraint == index_name("uq", table.sql_name, field.name):
            return field.name
    match = _SQLITE_UNIQUE.search(message)
    return match.group(1) if match and match.group(1) in table.field_map else None


async def taken(
    conn: AsyncConnection,
    table: TableDef,
    checked: Checked,
    *,
    record_id: int | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """A problem for each unique value of `checked` that another record holds: a write
    refused for other reasons names these too, so that a form shows every error at once."""
    problems = []
    for field in table.fields:
        value = checked.values.get(field.name)
        if not field.unique or value is None or field.name in skip:
            continue
        column = table.sql.c[field.name]
        query = sa.select(table.sql.c.id).where(column == value).limit(1)
        if record_id is not None:
            query = query.where(table.sql.c.id != record_id)
        if (await conn.execute(query)).first() is not None:
            problems.append(unique_error(field.name))
    return problems


async def check_unique(
    conn: AsyncConnection, table: TableDef, checked: Sequence[tuple[int | None, Checked]]
) -> None:
    """409 naming each item of a batch whose unique value is taken or repeated in it."""
    problems = []
    for field in (f for f in table.fields if f.unique):
        seen: dict[Any, int | None] = {}
        for index, one in checked:
            value = one.values.get(field.name)
            if value is None:
                continue
            if value in seen:
                problems.append(
                    unique_error(field.name, index)
                    | {"message": f"repeats the {field.name} of item {seen[value]}"}
                )
            seen.setdefault(value, index)
        if not seen:
            continue
        column = table.sql.c[field.name]
        taken = set((await conn.execute(sa.select(column).where(column.in_(list(seen))))).scalars())
        problems += [unique_error(field.name, seen[v]) for v in taken]
    if problems:
        problems.sort(key=lambda p: p.get("index") or 0)
        raise UniqueViolation(
            f"{len(problems)} records conflict with unique values", details=problems
        )
