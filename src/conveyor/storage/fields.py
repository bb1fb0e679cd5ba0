"""Field definitions: their types, their options, and the SQL column each one becomes."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from conveyor.db.types import UTCDateTime
from conveyor.storage.names import name_problem
from conveyor.storage.sqltypes import ExactDecimal


class FieldType(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    #: Exact: stored as NUMERIC(precision, scale) (a scaled integer on SQLite).
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    #: ISO 8601 `YYYY-MM-DD`.
    DATE = "date"
    #: ISO 8601 with a timezone; stored and returned in UTC.
    DATETIME = "datetime"
    JSON = "json"
    EMAIL = "email"
    URL = "url"
    #: One of the field's `choices`.
    SELECT = "select"
    #: The id of a record of another table (`table`), enforced by a foreign key.
    REFERENCE = "reference"


#: Types stored as text: they can be searched and matched with contains/startswith.
TEXTUAL = frozenset({FieldType.TEXT, FieldType.EMAIL, FieldType.URL, FieldType.SELECT})
NUMERIC = frozenset({FieldType.INTEGER, FieldType.DECIMAL})
#: Types whose `min`/`max` bound the length rather than the value.
LENGTH_BOUNDED = frozenset({FieldType.TEXT, FieldType.EMAIL, FieldType.URL})
ON_DELETE = ("restrict", "cascade", "set_null")
MAX_DECIMAL_PRECISION = 18  # what a 64-bit integer holds, so SQLite stays exact
INT64 = (-(2**63), 2**63 - 1)

_OPTION_KEYS = frozenset(
    [
        "required",
        "unique",
        "default",
        "min",
        "max",
        "pattern",
        "choices",
        "indexed",
        "searchable",
        "precision",
        "scale",
        "table",
        "on_delete",
    ]
)


@dataclass(frozen=True)
class Field:
    """One user field: a column of the table's SQL table, plus the checks on its values."""

    name: str
    type: FieldType
    label: str = ""
    required: bool = False
    unique: bool = False
    #: The JSON form of the default, already checked against the field.
    default: Any = None
    min: int | str | None = None
    max: int | str | None = None
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    indexed: bool = False
    searchable: bool = False
    precision: int | None = None
    scale: int | None = None
    #: Reference fields: the referenced table's name, and what deleting its record does.
    table: str | None = None
    on_delete: str | None = None

    def options(self) -> dict[str, Any]:
        """The options as stored and returned (everything but name, type and label)."""
        data = asdict(self)
        data["choices"] = list(self.choices) if self.choices is not None else None
        return {k: v for k, v in data.items() if k in _OPTION_KEYS}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type.value, "label": self.label} | self.options()

    @classmethod
    def from_row(cls, name: str, type_: str, label: str, options: dict[str, Any]) -> Field:
        known = {k: v for k, v in options.items() if k in _OPTION_KEYS}
        if known.get("choices") is not None:
            known["choices"] = tuple(known["choices"])
        return cls(name=name, type=FieldType(type_), label=label, **known)

    def sql_type(self) -> sa.types.TypeEngine[Any]:
        if self.type in TEXTUAL:
            return sa.Text()
        if self.type in (FieldType.INTEGER, FieldType.REFERENCE):
            return sa.BigInteger()
        if self.type is FieldType.DECIMAL:
            return ExactDecimal(self.precision or MAX_DECIMAL_PRECISION, self.scale or 0)
        if self.type is FieldType.BOOLEAN:
            return sa.Boolean()
        if self.type is FieldType.DATE:
            return sa.Date()
        if self.type is FieldType.DATETIME:
            return UTCDateTime()
        return sa.JSON(none_as_null=True)

    @property
    def sortable(self) -> bool:
        return self.type is not FieldType.JSON

    @property
    def min_value(self) -> Decimal | None:
        return Decimal(self.min) if self.min is not None else None

    @property
    def max_value(self) -> Decimal | None:
        return Decimal(self.max) if self.max is not None else None

    def with_changes(self, **changes: Any) -> Field:
        return replace(self, **changes)


def parse_field(spec: object, path: str) -> tuple[Field | None, list[dict[str, Any]]]:
    """A field from its JSON definition, or the problems found in it (each with a path)."""
    problems: list[dict[str, Any]] = []

    def problem(key: str, message: str) -> None:
        problems.append(
            {"field": f"{path}.{key}" if path else key, "rule": None, "message": message}
        )

    if not isinstance(spec, dict):
        problem("", 'a field is a JSON object like {"name": ..., "type": ...}')
        return None, problems
    for key in spec.keys() - _OPTION_KEYS - {"name", "type", "label"}:
        problem(str(key), "unknown field option")
    name = spec.get("name")
    if (error := name_problem(name, what="field")) is not None:
        problem("name", error)
    try:
        type_ = FieldType(str(spec.get("type")))
    except ValueError:
        allowed = ", ".join(t.value for t in FieldType)
        problem("type", f"unknown field type {spec.get('type')!r} (one of: {allowed})")
        return None, problems
    values = {k: spec[k] for k in _OPTION_KEYS if spec.get(k) is not None}
    values["label"] = spec.get("label") or name
    _check_options(type_, values, problem)
    if problems:
        return None, problems
    assert isinstance(name, str)
    if values.get("choices") is not None:
        values["choices"] = tuple(values["choices"])
    if type_ is FieldType.REFERENCE:
        values.setdefault("on_delete", "restrict")
    return Field(name=name, type=type_, **values), problems


def _check_options(type_: FieldType, values: dict[str, Any], problem: Any) -> None:
    for key in ("required", "unique", "indexed", "searchable"):
        if key in values and not isinstance(values[key], bool):
            problem(key, "must be true or false")
    if not isinstance(values["label"], str) or len(values["label"]) > 200:
        problem("label", "must be a string of at most 200 characters")
    if values.get("searchable") and type_ not in TEXTUAL:
        problem("searchable", "only text, email, url and select fields can be searchable")
    if values.get("unique") and type_ in (FieldType.JSON, FieldType.BOOLEAN):
        problem("unique", f"a {type_.value} field cannot be unique")
    if values.get("indexed") and type_ is FieldType.JSON:
        problem("indexed", "a json field cannot be indexed")
    _check_bounds(type_, values, problem)
    _check_type_options(type_, values, problem)


def _check_bounds(type_: FieldType, values: dict[str, Any], problem: Any) -> None:
    for key in ("min", "max"):
        if key not in values:
            continue
        value = values[key]
        if type_ in LENGTH_BOUNDED:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problem(key, "a length bound must be a non-negative integer")
        elif type_ in NUMERIC:
            number = _number(value)
            if number is None:
                problem(key, "must be a number")
            else:
                if not INT64[0] <= number <= INT64[1]:
                    problem(key, "must fit in 64 bits")
                elif type_ is FieldType.INTEGER and number != int(number):
                    problem(key, "must be a whole number for an integer field")
                else:
                    values[key] = int(number) if type_ is FieldType.INTEGER else str(number)
        else:
            problem(key, f"min and max do not apply to {type_.value} fields")
    low, high = values.get("min"), values.get("max")
    if low is not None and high is not None and _number(low) is not None:
        low_n, high_n = _number(low), _number(high)
        if low_n is not None and high_n is not None and low_n > high_n:
            problem("min", "must not be greater than max")


def _check_type_options(type_: FieldType, values: dict[str, Any], problem: Any) -> None:
    pattern = values.get("pattern")
    if pattern is not None:
        if type_ not in LENGTH_BOUNDED:
            problem("pattern", "a pattern applies to text, email and url fields")
        elif not isinstance(pattern, str) or len(pattern) > 1000:
            problem("pattern", "must be a regular expression of at most 1000 characters")
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                problem("pattern", f"invalid regular expression: {exc}")
    choices = values.get("choices")
    if type_ is FieldType.SELECT:
        if not isinstance(choices, list) or not choices:
            problem("choices", "a select field needs a non-empty list of choices")
        elif not all(isinstance(c, str) and 0 < len(c) <= 255 for c in choices):
            problem("choices", "each choice is a string of 1 to 255 characters")
        elif len(set(choices)) != len(choices):
            problem("choices", "choices must be distinct")
    elif choices is not None:
        problem("choices", "choices apply to select fields only")
    if type_ is FieldType.DECIMAL:
        precision = values.setdefault("precision", MAX_DECIMAL_PRECISION)
        scale = values.setdefault("scale", 2)
        if not isinstance(precision, int) or not 1 <= precision <= MAX_DECIMAL_PRECISION:
            problem("precision", f"must be an integer from 1 to {MAX_DECIMAL_PRECISION}")
        elif not isinstance(scale, int) or not 0 <= scale <= precision:
            problem("scale", "must be an integer from 0 to the precision")
    else:
        for key in ("precision", "scale"):
            if key in values:
                problem(key, "applies to decimal fields only")
    if type_ is FieldType.REFERENCE:
        if name_problem(values.get("table"), what="table") is not None:
            problem("table", "a reference field names the table it points to")
        if values.get("on_delete", "restrict") not in ON_DELETE:
            problem("on_delete", f"one of {', '.join(ON_DELETE)}")
    else:
        for key in ("table", "on_delete"):
            if key in values:
                problem(key, "applies to reference fields only")


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
