"""The field designer's form: which options each type takes, the spec it gives the
storage service, and the values it shows (a stored field, or what was typed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from conveyor.storage.fields import (
    LENGTH_BOUNDED,
    NUMERIC,
    ON_DELETE,
    TEXTUAL,
    Field,
    FieldType,
)
from conveyor.web.forms import Form

ALL_TYPES = tuple(FieldType)
FLAGS = ("required", "unique", "indexed", "searchable")


@dataclass(frozen=True)
class Option:
    name: str
    label: str
    hint: str
    types: tuple[FieldType, ...]
    kind: str = "text"

    @property
    def used_by(self) -> str:
        """For `data-types`: app.js shows the option only for these field types."""
        return " ".join(t.value for t in self.types)


def _without(*excluded: FieldType) -> tuple[FieldType, ...]:
    return tuple(t for t in ALL_TYPES if t not in excluded)


#: Every option, with the field types it applies to (the storage service's own rules).
OPTIONS = (
    Option("required", "Required", "A record must have a value.", ALL_TYPES, "checkbox"),
    Option(
        "unique",
        "Unique",
        "No two records may share a value.",
        _without(FieldType.JSON, FieldType.BOOLEAN),
        "checkbox",
    ),
    Option(
        "indexed",
        "Indexed",
        "Faster filters and sorting on this field.",
        _without(FieldType.JSON),
        "checkbox",
    ),
    Option(
        "searchable",
        "Searchable",
        "Found by the search box (q).",
        tuple(sorted(TEXTUAL)),
        "checkbox",
    ),
    Option(
        "default",
        "Default",
        "Used when a new record leaves the field out. JSON fields: a JSON value; "
        "booleans: true or false.",
        _without(FieldType.REFERENCE),
    ),
    Option(
        "min",
        "Minimum",
        "Text, email, url: the shortest length; numbers: the smallest value.",
        tuple(sorted(LENGTH_BOUNDED | NUMERIC)),
    ),
    Option(
        "max",
        "Maximum",
        "Text, email, url: the longest length; numbers: the largest value.",
        tuple(sorted(LENGTH_BOUNDED | NUMERIC)),
    ),
    Option(
        "pattern",
        "Pattern",
        "A regular expression the whole value must match, e.g. [A-Z]{2}-\\d+.",
        tuple(sorted(LENGTH_BOUNDED)),
    ),
    Option("choices", "Choices", "One per line.", (FieldType.SELECT,), "lines"),
    Option(
        "precision",
        "Precision",
        "Total digits (1 to 18).",
        (FieldType.DECIMAL,),
        "number",
    ),
    Option("scale", "Scale", "Digits after the decimal point.", (FieldType.DECIMAL,), "number"),
    Option("table", "Refers to table", "", (FieldType.REFERENCE,), "table"),
    Option(
        "on_delete",
        "When the referenced record is deleted",
        "restrict: refuse; cascade: delete this record too; set_null: clear this field.",
        (FieldType.REFERENCE,),
        "on_delete",
    ),
)
OPTION_MAP = {o.name: o for o in OPTIONS}
#: Every form field an error may be shown next to.
FIELDS = ("name", "label", "type", *OPTION_MAP)
ON_DELETE_CHOICES = ON_DELETE


def _type_of(form: Form) -> FieldType | None:
    try:
        return FieldType(form.get("type"))
    except ValueError:
        return None


def _number(raw: str) -> Any:
    """An integer as an int, anything else as typed (the service says what is wrong)."""
    text = raw.strip()
    try:
        return int(text)
    except ValueError:
        return text


def _default(field_type: FieldType | None, raw: str) -> Any:
    text = raw.strip()
    if field_type is FieldType.JSON:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text  # json_default_problem() reports it before the service sees it
    if field_type is FieldType.BOOLEAN:
        return {"true": True, "false": False}.get(text.lower(), text)
    if field_type is FieldType.INTEGER:
        return _number(text)
    return raw


def spec_of(form: Form) -> dict[str, Any]:
    """The storage service's field definition for a posted form.

    Options that do not apply to the chosen type are left out (the form keeps their
    inputs, hidden, while the type changes); a blank option is None, which clears it.
    """
    field_type = _type_of(form)
    spec: dict[str, Any] = {
        "name": form.get("name").strip(),
        "type": form.get("type"),
        "label": form.get("label").strip() or None,
    }
    for option in OPTIONS:
        applies = field_type is not None and field_type in option.types
        if option.kind == "checkbox":
            spec[option.name] = form.has(option.name) if applies else None
            continue
        raw = form.get(option.name)
        if not applies or not raw.strip():
            spec[option.name] = None
        elif option.name == "default":
            spec[option.name] = _default(field_type, raw)
        elif option.kind == "lines":
            spec[option.name] = [line for line in raw.splitlines() if line.strip()]
        elif option.kind == "number" or (
            option.name in ("min", "max") and field_type in LENGTH_BOUNDED
        ):
            spec[option.name] = _number(raw)
        else:
            spec[option.name] = raw.strip()
    return spec


def json_default_problem(form: Form) -> str | None:
    """A JSON field's default must parse: the service would take bad JSON as a string."""
    if _type_of(form) is not FieldType.JSON or not form.get("default").strip():
        return None
    try:
        orjson.loads(form.get("default"))
    except orjson.JSONDecodeError as exc:
        return f"is not valid JSON: {exc}"
    return None


def creation_spec(form: Form) -> dict[str, Any]:
    """For a new field: only the options that were given (and the flags that are on)."""
    flags = {o.name for o in OPTIONS if o.kind == "checkbox"}
    return {
        k: v for k, v in spec_of(form).items() if v is not None and not (k in flags and v is False)
    }


def values_of_form(form: Form) -> dict[str, Any]:
    values: dict[str, Any] = {name: form.get(name) for name in ("name", "label", "type")}
    for option in OPTIONS:
        values[option.name] = (
            form.has(option.name) if option.kind == "checkbox" else form.get(option.name)
        )
    return values


def values_of_field(field: Field | None) -> dict[str, Any]:
    if field is None:
        blank: dict[str, Any] = {"name": "", "label": "", "type": FieldType.TEXT.value}
        for option in OPTIONS:
            blank[option.name] = False if option.kind == "checkbox" else ""
        blank["on_delete"] = "restrict"
        return blank
    values: dict[str, Any] = {"name": field.name, "label": field.label, "type": field.type.value}
    for option in OPTIONS:
        value = getattr(field, option.name)
        if option.kind == "checkbox":
            values[option.name] = bool(value)
        elif value is None:
            values[option.name] = ""
        elif option.kind == "lines":
            values[option.name] = "\n".join(value)
        elif option.name == "default":
            values[option.name] = _shown_default(field, value)
        else:
            values[option.name] = str(value)
    return values


def _shown_default(field: Field, value: Any) -> str:
    if field.type is FieldType.JSON:
        return orjson.dumps(value).decode()
    if field.type is FieldType.BOOLEAN:
        return "true" if value else "false"
    return str(value)


def summary(field: Field) -> list[str]:
    """Short words for the options a field has, for the designer's list."""
    words = [flag for flag in FLAGS if getattr(field, flag)]
    if field.default is not None:
        words.append(f"default {_shown_default(field, field.default)}")
    if field.min is not None:
        words.append(f"min {field.min}")
    if field.max is not None:
        words.append(f"max {field.max}")
    if field.pattern:
        words.append(f"pattern {field.pattern}")
    if field.choices:
        words.append("choices: " + ", ".join(field.choices))
    if field.type is FieldType.DECIMAL:
        words.append(f"precision {field.precision}, scale {field.scale}")
    if field.type is FieldType.REFERENCE:
        words.append(f"→ {field.table} (on delete {field.on_delete})")
    return words
