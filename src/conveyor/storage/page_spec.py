"""A custom page of a table, as data: its JSON form, parsed and checked for shape.

A page names fields by their names. What a name must be (a field of the table, an
operator the field supports, a value it accepts) is checked against the table in
`page_check`; here only the shape is. Keys left out (or null) mean what the table's
generated page does: its first columns, a filter for every field, every field on the
form, every action.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from conveyor.storage.query import MAX_LIMIT

Problem = dict[str, Any]
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ACTIONS = ("create", "edit", "delete", "export")
#: Keys a page's JSON may carry; the last four are written by the server and ignored.
KEYS = frozenset(
    {"slug", "title", "description", "columns", "sort", "filters", "user_filters", "search"}
    | {"page_size", "sections", "read_only", "hidden", "help", "actions"}
)
OUTPUT_ONLY = frozenset({"table", "problems", "created_at", "updated_at"})
MAX_ITEMS = 200
MAX_FILTERS = 20
MAX_SECTIONS = 50
MAX_TEXT = 500
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class Column:
    field: str
    label: str | None = None

    def to_json(self) -> str | dict[str, str]:
        return self.field if self.label is None else {"field": self.field, "label": self.label}


@dataclass(frozen=True)
class FixedFilter:
    """A condition the page always applies: `field op value`, as in record queries."""

    field: str
    op: str
    value: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "op": self.op, "value": self.value}


@dataclass(frozen=True)
class Section:
    title: str
    fields: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "fields": list(self.fields)}


@dataclass(frozen=True)
class Page:
    """A page definition. None for `columns`, `user_filters` or `sections`: as generated."""

    slug: str
    title: str
    description: str | None = None
    columns: tuple[Column, ...] | None = None
    sort: str | None = None
    filters: tuple[FixedFilter, ...] = ()
    user_filters: tuple[str, ...] | None = None
    search: bool = True
    page_size: int = DEFAULT_PAGE_SIZE
    sections: tuple[Section, ...] | None = None
    read_only: tuple[str, ...] = ()
    hidden: dict[str, Any] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    actions: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(ACTIONS, True))

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.title,
            "description": self.description,
            "columns": None if self.columns is None else [c.to_json() for c in self.columns],
            "sort": self.sort,
            "filters": [f.to_json() for f in self.filters],
            "user_filters": None if self.user_filters is None else list(self.user_filters),
            "search": self.search,
            "page_size": self.page_size,
            "sections": None if self.sections is None else [s.to_json() for s in self.sections],
            "read_only": list(self.read_only),
            "hidden": dict(self.hidden),
            "help": dict(self.help),
            "actions": dict(self.actions),
        }

    def renamed(self, old: str, new: str) -> Page:
        """This page after field `old` was renamed `new`."""

        def name(n: str) -> str:
            return new if n == old else n

        def names(items: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(dict.fromkeys(name(n) for n in items))

        def keys(mapping: dict[str, Any]) -> dict[str, Any]:
            return {name(k): v for k, v in mapping.items()}

        sort = None
        if self.sort is not None:
            sort = ",".join(
                ("-" if k.startswith("-") else "") + name(k.lstrip("-"))
                for k in self.sort.split(",")
            )
        return replace(
            self,
            columns=None
            if self.columns is None
            else tuple(replace(c, field=name(c.field)) for c in self.columns),
            sort=sort,
            filters=tuple(replace(f, field=name(f.field)) for f in self.filters),
            user_filters=None if self.user_filters is None else names(self.user_filters),
            sections=None
            if self.sections is None
            else tuple(replace(s, fields=names(s.fields)) for s in self.sections),
            read_only=names(self.read_only),
            hidden=keys(self.hidden),
            help=keys(self.help),
        )


def problem(path: str, message: str) -> Problem:
    return {"field": path, "rule": None, "message": message}


def parse(spec: object) -> tuple[Page | None, list[Problem]]:
    """A page from its JSON, or every problem of shape found in it (each with its path)."""
    if not isinstance(spec, dict):
        return None, [problem("", "a page is a JSON object")]
    problems = [problem(str(k), "unknown page key") for k in spec.keys() - KEYS - OUTPUT_ONLY]
    slug, title = spec.get("slug"), spec.get("title")
    if not isinstance(slug, str) or not SLUG.match(slug):
        problems.append(problem("slug", "1 to 63 lowercase letters, digits and inner hyphens"))
    if not isinstance(title, str) or not 0 < len(title.strip()) <= 200:
        problems.append(problem("title", "a title of 1 to 200 characters"))
    description = _text(spec, "description", problems)
    parts: dict[str, Any] = {
        "columns": _columns(spec.get("columns"), problems),
        "sort": _sort(spec.get("sort"), problems),
        "filters": _filters(spec.get("filters"), problems),
        "user_filters": _names(spec.get("user_filters"), "user_filters", problems, nullable=True),
        "sections": _sections(spec.get("sections"), problems),
        "read_only": _names(spec.get("read_only"), "read_only", problems) or (),
        "hidden": _mapping(spec.get("hidden"), "hidden", problems),
        "help": _help(spec.get("help"), problems),
        "actions": _actions(spec.get("actions"), problems),
        "search": _flag(spec.get("search"), "search", True, problems),
        "page_size": _page_size(spec.get("page_size"), problems),
    }
    if problems:
        return None, problems
    assert isinstance(slug, str) and isinstance(title, str)
    return Page(slug=slug, title=title.strip(), description=description, **parts), []


def _text(spec: dict[str, Any], key: str, problems: list[Problem]) -> str | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > 2000):
        problems.append(problem(key, "must be a string of at most 2000 characters"))
        return None
    return value or None


def _is_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 63


def _columns(value: object, problems: list[Problem]) -> tuple[Column, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        problems.append(problem("columns", f"a list of at most {MAX_ITEMS} fields"))
        return None
    columns: list[Column] = []
    for i, item in enumerate(value):
        if isinstance(item, dict) and not item.keys() - {"field", "label"}:
            name, label = item.get("field"), item.get("label")
        else:
            name, label = item, None
        if not _is_name(name):
            problems.append(problem(f"columns[{i}]", 'a field name, or {"field", "label"}'))
        elif label is not None and (not isinstance(label, str) or len(label) > 200):
            problems.append(problem(f"columns[{i}].label", "at most 200 characters"))
        elif any(c.field == name for c in columns):
            problems.append(problem(f"columns[{i}]", f"{name!r} is a column already"))
        else:
            assert isinstance(name, str)
            columns.append(Column(name, label or None))
    return tuple(columns)


def _sort(value: object, problems: list[Problem]) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 600:
        problems.append(problem("sort", 'field names, "-" for descending, e.g. "-idade,nome"'))
        return None
    return ",".join(part.strip() for part in value.split(","))


def _filters(value: object, problems: list[Problem]) -> tuple[FixedFilter, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_FILTERS:
        problems.append(problem("filters", f"a list of at most {MAX_FILTERS} filters"))
        return ()
    filters = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or item.keys() - {"field", "op", "value"}:
            problems.append(problem(f"filters[{i}]", 'a filter is {"field", "op", "value"}'))
            continue
        name, op = item.get("field"), item.get("op", "eq")
        if not _is_name(name):
            problems.append(problem(f"filters[{i}].field", "a field name"))
        elif not isinstance(op, str) or len(op) > 12:
            problems.append(problem(f"filters[{i}].op", "an operator such as eq or gte"))
        else:
            assert isinstance(name, str)
            filters.append(FixedFilter(name, op, item.get("value")))
    return tuple(filters)


def _names(
    value: object, path: str, problems: list[Problem], *, nullable: bool = False
) -> tuple[str, ...] | None:
    if value is None:
        return None if nullable else ()
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        problems.append(problem(path, f"a list of at most {MAX_ITEMS} field names"))
        return None
    for i, name in enumerate(value):
        if not _is_name(name):
            problems.append(problem(f"{path}[{i}]", "a field name"))
    if len(set(map(str, value))) != len(value):
        problems.append(problem(path, "names a field twice"))
    return tuple(n for n in value if _is_name(n))


def _sections(value: object, problems: list[Problem]) -> tuple[Section, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_SECTIONS:
        problems.append(problem("sections", f"a list of at most {MAX_SECTIONS} sections"))
        return None
    sections = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or item.keys() - {"title", "fields"}:
            problems.append(problem(f"sections[{i}]", 'a section is {"title", "fields"}'))
            continue
        title = item.get("title") or ""
        if not isinstance(title, str) or len(title) > 200:
            problems.append(problem(f"sections[{i}].title", "at most 200 characters"))
        fields = _names(item.get("fields"), f"sections[{i}].fields", problems) or ()
        sections.append(Section(str(title), fields))
    return tuple(sections)


def _mapping(value: object, path: str, problems: list[Problem]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_ITEMS:
        problems.append(problem(path, "an object of field names and values"))
        return {}
    for name in value:
        if not _is_name(name):
            problems.append(problem(f"{path}.{str(name)[:63]}", "a field name"))
    return dict(value)


def _help(value: object, problems: list[Problem]) -> dict[str, str]:
    texts = _mapping(value, "help", problems)
    for name, text in texts.items():
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            problems.append(problem(f"help.{name}", f"at most {MAX_TEXT} characters of text"))
    return {k: v for k, v in texts.items() if isinstance(v, str) and v}


def _actions(value: object, problems: list[Problem]) -> dict[str, bool]:
    actions = dict.fromkeys(ACTIONS, True)
    if value is None:
        return actions
    if not isinstance(value, dict):
        problems.append(problem("actions", f"an object of {', '.join(ACTIONS)}: true or false"))
        return actions
    for key, allowed in value.items():
        if key not in ACTIONS:
            problems.append(problem(f"actions.{str(key)[:63]}", f"one of {', '.join(ACTIONS)}"))
        else:
            actions[key] = _flag(allowed, f"actions.{key}", True, problems)
    return actions


def _flag(value: object, path: str, default: bool, problems: list[Problem]) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.append(problem(path, "must be true or false"))
        return default
    return value


def _page_size(value: object, problems: list[Problem]) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        problems.append(problem("page_size", f"an integer from 1 to {MAX_LIMIT}"))
        return DEFAULT_PAGE_SIZE
    return value
