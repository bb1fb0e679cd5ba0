"""Record queries: filters, sorting and pagination, from query-string pairs to SQL.

Field names and operators are checked against allowlists (the table's fields, the
operators each type supports) and every value is a bound parameter, converted for
its field first. Keyset cursors are opaque base64 of the sort values of the last row.
"""

from __future__ import annotations

import base64
import binascii
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from conveyor.exceptions import BadRequest
from conveyor.storage import search
from conveyor.storage.fields import TEXTUAL, Field, FieldType
from conveyor.storage.model import SYSTEM_FIELDS, TableDef
from conveyor.storage.values import Invalid, decode, from_text, to_json

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 10_000_000
MAX_IN = 100
#: More would make a statement too large for the database (SQLite: 1000 terms).
MAX_FILTERS = 50
MAX_SORT = 8
_FILTER = re.compile(r"^([a-z][a-z0-9_]{0,62})(?:\[([a-z]{1,12})\])?$")
_CONTROL = frozenset({"sort", "q", "limit", "cursor", "offset", "page", "count"})
_ALL_OPS = ("eq", "ne", "in", "isnull")
_ORDER_OPS = ("lt", "lte", "gt", "gte")
_TEXT_OPS = ("contains", "icontains", "startswith")


@dataclass(frozen=True)
class Filter:
    field: Field
    op: str
    value: Any


@dataclass(frozen=True)
class SortKey:
    field: Field | None  # None: the search score
    descending: bool


@dataclass(frozen=True)
class Query:
    filters: list[Filter] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    q: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: list[Any] | None = None
    offset: int = 0
    count: bool = False


def bad(name: str, message: str) -> BadRequest:
    return BadRequest(
        f"{name}: {message}", details=[{"field": name, "rule": None, "message": message}]
    )


def operators(f: Field) -> tuple[str, ...]:
    if f.type is FieldType.JSON:
        return ("isnull",)
    ops: tuple[str, ...] = _ALL_OPS
    if f.type is not FieldType.BOOLEAN:
        ops += _ORDER_OPS
    if f.type in TEXTUAL:
        ops += _TEXT_OPS
    return ops


def parse(table: TableDef, params: Iterable[tuple[str, str]]) -> Query:
    """A query from the request's query-string pairs (400 for anything not allowed)."""
    filters: list[Filter] = []
    control: dict[str, str] = {}
    for name, raw in params:
        if name in _CONTROL:
            if name in control:
                raise bad(name, "given more than once")
            control[name] = raw
        else:
            if len(filters) >= MAX_FILTERS:
                raise bad("filters", f"at most {MAX_FILTERS} filters")
            filters.append(_filter(table, name, raw))
    limit = _integer(control, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _integer(control, "offset", 0, 0, MAX_OFFSET)
    if "page" in control:
        if "offset" in control:
            raise bad("page", "give page or offset, not both")
        offset = (_integer(control, "page", 1, 1, MAX_OFFSET // limit) - 1) * limit
    if "cursor" in control and ("offset" in control or "page" in control):
        raise bad("cursor", "a cursor cannot be combined with offset or page")
    q = control.get("q")
    if q is not None and (not q.strip() or len(q) > 500 or "\x00" in q):
        raise bad("q", "give 1 to 500 characters of search text")
    sort = _sort(table, control.get("sort"), q is not None)
    cursor = _decode_cursor(control["cursor"], sort, q) if "cursor" in control else None
    count = control.get("count", "false").lower()
    if count not in ("true", "false", "1", "0"):
        raise bad("count", "must be true or false")
    return Query(filters, sort, q, limit, cursor, offset, count in ("true", "1"))


def _integer(control: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = control.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not low <= int(raw) <= high:
        raise bad(name, f"must be an integer from {low} to {high}")
    return int(raw)


def _filter(table: TableDef, name: str, raw: str) -> Filter:
    match = _FILTER.match(name)
    if match is None:
        raise bad(name[:100], "not a field filter; use field=value or field[op]=value")
    field_name, op = match.group(1), match.group(2) or "eq"
    if "\x00" in raw:
        # PostgreSQL cannot store it, and as a LIKE pattern it would match every row.
        raise bad(name, "NUL characters are not allowed in values")
    f = table.queryable.get(field_name)
    if f is None:
        raise bad(field_name, f"unknown field (fields: {', '.join(table.queryable)})")
    if op not in operators(f):
        raise bad(
            name,
            f"unknown operator {op!r} for a {f.type.value} field "
            f"(allowed: {', '.join(operators(f))})",
        )
    try:
        if op == "isnull":
            value: Any = _boolean(raw)
        elif op == "in":
            items = raw.split(",")
            if len(items) > MAX_IN:
                raise Invalid(f"at most {MAX_IN} values")
            value = [from_text(f, item) for item in items]
        else:
            value = from_text(f, raw)
    except Invalid as exc:
        raise bad(name, f"bad value {raw[:100]!r}: {exc}") from None
    return Filter(f, op, value)


def fixed_filter(table: TableDef, name: str, op: str, value: Any) -> Filter:
    """A filter written as JSON (`{"field": "idade", "op": "gte", "value": 18}`), as
    pages keep them; `Invalid` names what does not fit the table."""
    f = table.queryable.get(name)
    if f is None:
        raise Invalid(f"no field named {name!r}")
    if op not in operators(f):
        raise Invalid(
            f"{op!r} does not apply to a {f.type.value} field ({', '.join(operators(f))})"
        )
    if op == "isnull":
        if not isinstance(value, bool):
            raise Invalid("isnull takes true or false")
        return Filter(f, op, value)
    if op == "in":
        if not isinstance(value, list) or not 0 < len(value) <= MAX_IN:
            raise Invalid(f"in takes a list of 1 to {MAX_IN} values")
        return Filter(f, op, [_fixed_value(f, v) for v in value])
    if op in _TEXT_OPS and not isinstance(value, str):
        raise Invalid(f"{op} takes text")
    return Filter(f, op, _fixed_value(f, value))


class Fixed(Protocol):
    """A filter written as JSON (`page_spec.FixedFilter`)."""

    @property
    def field(self) -> str: ...

    @property
    def op(self) -> str: ...

    @property
    def value(self) -> Any: ...


def fixed_filters(table: TableDef, fixed: Iterable[Fixed]) -> list[Filter]:
    """The filters of `fixed` that fit the table (a page reports the others)."""
    filters = []
    for f in fixed:
        try:
            filters.append(fixed_filter(table, f.field, f.op, f.value))
        except Invalid:
            continue
    return filters


def _fixed_value(f: Field, value: Any) -> Any:
    if value is None:
        raise Invalid("a value is required (use isnull for empty fields)")
    if isinstance(value, str) and "\x00" in value:
        raise Invalid("NUL characters are not allowed in values")
    return decode(f, value)


def _boolean(raw: str) -> bool:
    if raw.lower() not in ("true", "false", "1", "0"):
        raise Invalid("must be true or false")
    return raw.lower() in ("true", "1")


def _sort(table: TableDef, raw: str | None, searching: bool) -> list[SortKey]:
    keys: list[SortKey] = []
    for item in (raw or "").split(",") if raw else []:
        name = item.strip()
        descending = name.startswith("-")
        name = name.removeprefix("-")
        f = table.queryable.get(name)
        if f is None or not f.sortable:
            raise bad(
                "sort",
                f"cannot sort by {name[:100]!r} (sortable: "
                f"{', '.join(n for n, x in table.queryable.items() if x.sortable)})",
            )
        if any(k.field is f for k in keys):
            raise bad("sort", f"{name!r} is given twice")
        keys.append(SortKey(f, descending))
    if len(keys) > MAX_SORT:
        raise bad("sort", f"at most {MAX_SORT} sort fields")
    if not keys and searching:
        keys.append(SortKey(None, True))
    if not any(k.field is SYSTEM_FIELDS["id"] for k in keys):
        keys.append(SortKey(SYSTEM_FIELDS["id"], keys[-1].descending if keys else False))
    return keys


def _signature(sort: list[SortKey], q: str | None) -> str:
    names = [("-" if k.descending else "") + (k.field.name if k.field else "_score") for k in sort]
    return ",".join(names) + ("?q" if q is not None else "")


def encode_cursor(sort: list[SortKey], q: str | None, values: list[Any]) -> str:
    encoded = [to_json(k.field, v) if k.field else v for k, v in zip(sort, values, strict=True)]
    body = orjson.dumps({"s": _signature(sort, q), "v": encoded})
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def _decode_cursor(raw: str, sort: list[SortKey], q: str | None) -> list[Any]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(data, dict) or data.get("s") != _signature(sort, q):
            raise bad("cursor", "this cursor belongs to a query with another sort or search")
        values = data["v"]
        if not isinstance(values, list) or len(values) != len(sort):
            raise ValueError
        return [
            decode(k.field, v) if k.field else _score(v) for k, v in zip(sort, values, strict=True)
        ]
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError, Invalid):
        raise bad("cursor", "invalid cursor; use the next_cursor of a previous page") from None


def _score(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError
    return float(value)


def condition(table: TableDef, f: Filter) -> sa.ColumnElement[bool]:
    column: sa.ColumnElement[Any] = table.sql.c[f.field.name]
    value: Any = f.value
    sqlite = table.dialect == "sqlite"
    if f.op in _COMPARISONS:
        return _COMPARISONS[f.op](column, value)
    if f.op == "in":
        return column.in_(value)
    if f.op == "isnull":
        return column.is_(None) if value else column.is_not(None)
    if f.op == "contains":
        if sqlite:  # SQLite's LIKE ignores case
            return sa.func.instr(column, value) > 0
        return column.contains(value, autoescape=True)
    if f.op == "icontains":
        return sa.func.lower(column).contains(value.lower(), autoescape=True)
    assert f.op == "startswith"  # parse() lets only the operators above through
    if sqlite:
        prefix: sa.ColumnElement[str] = sa.func.substr(column, 1, len(value))
        return sa.and_(prefix == value)
    return column.startswith(value, autoescape=True)


_COMPARISONS: dict[str, Callable[[sa.ColumnElement[Any], Any], sa.ColumnElement[bool]]] = {
    "eq": operator.eq,
    "ne": lambda column, value: column.is_distinct_from(value),
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def where(table: TableDef, query: Query) -> tuple[list[sa.ColumnElement[bool]], Any]:
    """The conditions of `query`, and the search score expression (None without q)."""
    conditions = [condition(table, f) for f in query.filters]
    score = None
    if query.q is not None:
        matched, score = search.match(table, query.q)
        conditions.append(matched)
    return conditions, score
