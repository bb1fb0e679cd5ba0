"""A page against its table: what it shows now, and what it names that does not fit.

The same walk serves both ends: saving a page refuses it (422) when any problem is
found; rendering a stored page keeps what still fits and shows the rest as problems,
so that a page whose field was deleted keeps working without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.storage.fields import Field
from conveyor.storage.model import TableDef
from conveyor.storage.page_spec import Page, Problem, Section, problem
from conveyor.storage.query import MAX_SORT, fixed_filter, operators
from conveyor.storage.values import Invalid, coerce

#: A page that does not choose its columns shows the first fields, as the generated one.
DEFAULT_COLUMNS = 8


@dataclass
class Resolved:
    """The parts of a page that fit its table now, and the problems of the rest."""

    page: Page
    table: TableDef
    columns: list[tuple[Field, str]] = field(default_factory=list)
    sort: str = ""
    user_filters: list[Field] = field(default_factory=list)
    sections: list[tuple[str, list[Field]]] = field(default_factory=list)
    read_only: frozenset[str] = frozenset()
    hidden: dict[str, Any] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def search(self) -> bool:
        return self.page.search and bool(self.table.searchable)

    @property
    def form_fields(self) -> list[Field]:
        return [f for _, fields in self.sections for f in fields]

    def can(self, action: str) -> bool:
        return self.page.actions.get(action, False)


def _missing(name: str) -> str:
    return f"no field named {name!r} (deleted, or never in this table)"


def resolve(page: Page, table: TableDef) -> Resolved:
    found = Resolved(page, table)
    _columns(found)
    _sort(found)
    _filters(found)
    _user_filters(found)
    _hidden(found)
    _sections(found)
    _read_only_and_help(found)
    _required(found)
    return found


def _user_field(found: Resolved, name: str, path: str) -> Field | None:
    f = found.table.field_map.get(name)
    if f is None:
        found.problems.append(problem(path, _missing(name)))
    return f


def _columns(found: Resolved) -> None:
    table = found.table
    if found.page.columns is None:
        found.columns = [(f, f.label or f.name) for f in table.fields[:DEFAULT_COLUMNS]]
        return
    for i, column in enumerate(found.page.columns):
        f = table.queryable.get(column.field)
        if f is None:
            found.problems.append(problem(f"columns[{i}]", _missing(column.field)))
        else:
            found.columns.append((f, column.label or f.label or f.name))


def _sort(found: Resolved) -> None:
    kept: list[str] = []
    for key in (found.page.sort or "").split(",") if found.page.sort else []:
        name = key.removeprefix("-")
        f = found.table.queryable.get(name)
        if f is None:
            found.problems.append(problem("sort", _missing(name)))
        elif not f.sortable:
            found.problems.append(problem("sort", f"a {f.type.value} field cannot be sorted"))
        elif any(k.removeprefix("-") == name for k in kept):
            found.problems.append(problem("sort", f"{name!r} is given twice"))
        else:
            kept.append(key)
    if len(kept) > MAX_SORT:
        found.problems.append(problem("sort", f"at most {MAX_SORT} sort fields"))
    found.sort = ",".join(kept[:MAX_SORT])


def _filters(found: Resolved) -> None:
    for i, fixed in enumerate(found.page.filters):
        try:
            fixed_filter(found.table, fixed.field, fixed.op, fixed.value)
        except Invalid as exc:
            where = "field" if fixed.field not in found.table.queryable else "value"
            if where == "value" and fixed.op not in operators(found.table.queryable[fixed.field]):
                where = "op"
            found.problems.append(problem(f"filters[{i}].{where}", str(exc)))


def _user_filters(found: Resolved) -> None:
    names = found.page.user_filters
    if names is None:
        found.user_filters = list(found.table.fields)
        return
    for i, name in enumerate(names):
        f = found.table.queryable.get(name)
        if f is None:
            found.problems.append(problem(f"user_filters[{i}]", _missing(name)))
        else:
            found.user_filters.append(f)


def _hidden(found: Resolved) -> None:
    for name, value in found.page.hidden.items():
        f = _user_field(found, name, f"hidden.{name}")
        if f is None:
            continue
        try:
            coerce(f, value)
        except Invalid as exc:
            found.problems.append(problem(f"hidden.{name}", f"the fixed value {exc}"))
            continue
        if value is None:
            found.problems.append(problem(f"hidden.{name}", "a hidden field needs a value"))
            continue
        found.hidden[name] = value


def _sections(found: Resolved) -> None:
    page, table = found.page, found.table
    sections = page.sections
    if sections is None:
        sections = (Section("", tuple(f.name for f in table.fields)),)
    placed: set[str] = set()
    for i, section in enumerate(sections):
        fields = []
        for j, name in enumerate(section.fields):
            path = f"sections[{i}].fields[{j}]"
            f = _user_field(found, name, path)
            if f is None or (page.sections is None and name in page.hidden):
                continue
            if name in placed:
                found.problems.append(problem(path, f"{name!r} is in another section already"))
            elif name in page.hidden:
                found.problems.append(problem(path, f"{name!r} is hidden: it has a fixed value"))
            else:
                placed.add(name)
                fields.append(f)
        found.sections.append((section.title, fields))


def _read_only_and_help(found: Resolved) -> None:
    kept = set()
    for i, name in enumerate(found.page.read_only):
        if _user_field(found, name, f"read_only[{i}]") is not None:
            if name in found.page.hidden:
                found.problems.append(problem(f"read_only[{i}]", f"{name!r} is hidden"))
            kept.add(name)
    found.read_only = frozenset(kept)
    for name, text in found.page.help.items():
        if _user_field(found, name, f"help.{name}") is not None:
            found.help[name] = text


def _required(found: Resolved) -> None:
    """A page that creates records must let each required field get a value."""
    if not found.page.actions.get("create"):
        return
    typed = {f.name for f in found.form_fields} - found.read_only
    for f in found.table.fields:
        if f.required and f.default is None and f.name not in typed | found.hidden.keys():
            where = "read_only" if f.name in found.read_only else "sections"
            found.problems.append(
                problem(
                    where,
                    f"the required field {f.name!r} is neither editable on the form nor "
                    "hidden with a value, so the page could not create records",
                )
            )
