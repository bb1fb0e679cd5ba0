"""A table's record form, built from its field types: the input each field gets, the
record a posted form gives the storage service, and the values shown back.

Inputs are named `v.<field>` (a field may be called `csrf_token`); errors are keyed by
the field's own name, as the service's 422 details name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from conveyor.storage.fields import TEXTUAL, Field, FieldType
from conveyor.storage.model import TableDef
from conveyor.storage.values import INTEGER_RE
from conveyor.web.forms import Form

PREFIX = "v."
#: Text fields that ask for more than this (their `max`) get a textarea; the others, a
#: single line.
LONG_TEXT = 255
Problem = dict[str, Any]


@dataclass(frozen=True)
class Widget:
    """How one field is edited: `kind` picks the template's markup."""

    field: Field
    #: input | textarea | checkbox | tristate | select | reference
    kind: str
    input_type: str = "text"
    inputmode: str = ""
    step: str = ""
    hint: str = ""

    @property
    def name(self) -> str:
        return PREFIX + self.field.name

    @property
    def id(self) -> str:
        return "field-" + self.field.name

    @property
    def label(self) -> str:
        return self.field.label or self.field.name


def widget(f: Field) -> Widget:
    hint = _hint(f)
    if f.type is FieldType.BOOLEAN:
        # A checkbox cannot say "no value": optional booleans get yes / no / —.
        kind = "checkbox" if f.required or f.default is not None else "tristate"
        return Widget(f, kind, hint=hint)
    if f.type is FieldType.SELECT:
        return Widget(f, "select", hint=hint)
    if f.type is FieldType.JSON:
        return Widget(f, "textarea", hint=hint or "A JSON value: an object, a list, text…")
    if f.type is FieldType.TEXT and f.max is not None and int(f.max) > LONG_TEXT:
        return Widget(f, "textarea", hint=hint)
    if f.type is FieldType.REFERENCE:
        # Text, not a number box: the picker searches what is typed (a name or an id).
        return Widget(f, "reference", hint=hint)
    shapes = {
        FieldType.INTEGER: ("number", "numeric", "1"),
        FieldType.DECIMAL: ("text", "decimal", ""),
        FieldType.DATE: ("date", "", ""),
        FieldType.DATETIME: ("datetime-local", "", "1"),
        FieldType.EMAIL: ("email", "email", ""),
        FieldType.URL: ("url", "url", ""),
    }
    input_type, inputmode, step = shapes.get(f.type, ("text", "", ""))
    return Widget(f, "input", input_type, inputmode, step, hint)


def widgets(table: TableDef) -> list[Widget]:
    return [widget(f) for f in table.fields]


def _hint(f: Field) -> str:
    parts = []
    if f.type in (FieldType.TEXT, FieldType.EMAIL, FieldType.URL):
        if f.min is not None and f.max is not None:
            parts.append(f"{f.min} to {f.max} characters")
        elif f.max is not None:
            parts.append(f"up to {f.max} characters")
        elif f.min is not None:
            parts.append(f"at least {f.min} characters")
        if f.pattern:
            parts.append(f"matching {f.pattern}")
    elif f.type in (FieldType.INTEGER, FieldType.DECIMAL):
        if f.min is not None:
            parts.append(f"at least {f.min}")
        if f.max is not None:
            parts.append(f"at most {f.max}")
        if f.type is FieldType.DECIMAL:
            parts.append(f"up to {f.scale} decimal places")
    elif f.type is FieldType.DATETIME:
        parts.append("in UTC")
    elif f.type is FieldType.REFERENCE:
        parts.append(f"a {f.table} record: type a few letters of it, or its id")
    if f.unique:
        parts.append("unique")
    if f.required:
        parts.insert(0, "required")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:]


def display_field(table: TableDef) -> Field | None:
    """The field that names a record in pickers and links: the one chosen for the
    table, else the first required text field, else the first text field."""
    if table.display_field is not None and table.display_field in table.field_map:
        return table.field_map[table.display_field]
    textual = [f for f in table.fields if f.type in TEXTUAL]
    return next((f for f in textual if f.required), textual[0] if textual else None)


def record_of(
    table: TableDef,
    form: Form,
    shown: dict[str, Any] | None = None,
    only: list[Widget] | None = None,
) -> tuple[dict[str, Any], list[Problem]]:
    """The record data for the storage service, and problems found in the form itself
    (JSON that does not parse).

    A new record (`shown` None) leaves blank fields out, so that their defaults apply.
    An edit sends only the fields whose input differs from what the form showed
    (`values_of_record` of the stored record): a blank one is cleared, and a value
    the form can only show rounded (microseconds) is not rewritten by a save.
    `only` limits the form to some fields (a custom page's editable ones).
    """
    data: dict[str, Any] = {}
    problems: list[Problem] = []
    for w in widgets(table) if only is None else only:
        f, raw = w.field, form.get(w.name)
        if w.kind == "textarea":
            raw = raw.replace("\r\n", "\n")  # browsers send CRLF line ends
        if shown is not None:
            typed = form.has(w.name) if w.kind == "checkbox" else raw
            if typed == shown.get(f.name):
                continue
        if w.kind == "checkbox":
            data[f.name] = form.has(w.name)
        elif not raw.strip():
            if shown is not None:
                data[f.name] = None
        else:
            try:
                data[f.name] = _value(f, raw)
            except ValueError as exc:
                problems.append({"field": f.name, "rule": None, "message": str(exc)})
    return data, problems


def _value(f: Field, raw: str) -> Any:
    text = raw.strip()
    if f.type in (FieldType.INTEGER, FieldType.REFERENCE):
        # Not a number: passed on as typed, and the service says what is wrong.
        return int(text) if INTEGER_RE.match(text) else text
    if f.type is FieldType.BOOLEAN:
        return {"true": True, "false": False}.get(text, text)
    if f.type is FieldType.DATETIME:
        return _with_zone(text)
    if f.type is FieldType.JSON:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON: {exc}") from None
    if f.type in (FieldType.TEXT, FieldType.SELECT):
        return raw
    return text


def _with_zone(text: str) -> str:
    """A `datetime-local` value has no zone: the form means UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    return text if parsed.tzinfo is not None else text + "Z"


def values_of_form(table: TableDef, form: Form) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for w in widgets(table):
        values[w.field.name] = form.has(w.name) if w.kind == "checkbox" else form.get(w.name)
    return values


def values_of_record(table: TableDef, record: dict[str, Any] | None) -> dict[str, Any]:
    """What each input shows: the stored record, or the defaults of a new one."""
    values: dict[str, Any] = {}
    for w in widgets(table):
        f = w.field
        value = record.get(f.name) if record is not None else f.default
        if w.kind == "checkbox":
            values[f.name] = bool(value)
        elif value is None:
            values[f.name] = ""
        elif f.type is FieldType.BOOLEAN:
            values[f.name] = "true" if value else "false"
        elif f.type is FieldType.JSON:
            values[f.name] = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
        elif f.type is FieldType.DATETIME:
            values[f.name] = _local(str(value))
        else:
            values[f.name] = str(value)
    return values


def _local(value: str) -> str:
    """An ISO time as `datetime-local` wants it: UTC, no zone, at most milliseconds."""
    try:
        parsed = datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return value
    spec = "seconds" if parsed.microsecond == 0 else "milliseconds"
    return parsed.replace(tzinfo=None).isoformat(timespec=spec)
