"""The page designer's form: a row of choices per field (column, label, filter, form
role, section, fixed value, help), a few fixed filters, and the page's settings; turned
into a page's JSON and back, so that nobody has to write JSON to design a page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.storage.fields import Field, FieldType
from conveyor.storage.model import SYSTEM_FIELDS, TableDef
from conveyor.storage.page_check import DEFAULT_COLUMNS
from conveyor.storage.page_spec import ACTIONS, DEFAULT_PAGE_SIZE, Page
from conveyor.storage.query import operators
from conveyor.storage.values import Invalid, from_text, to_json
from conveyor.web.forms import Form

#: How a field takes part in the form.
ROLES = ("editable", "read_only", "hidden", "left_out")
#: Blank fixed-filter rows offered beside the page's own.
BLANK_FILTERS = 2


@dataclass
class Row:
    """One field's choices in the designer."""

    field: Field
    column: bool = False
    label: str = ""
    column_position: str = ""
    user_filter: bool = False
    role: str = "left_out"
    section: str = ""
    form_position: str = ""
    fixed: str = ""
    help: str = ""

    @property
    def system(self) -> bool:
        return self.field.name in SYSTEM_FIELDS


@dataclass
class Design:
    title: str = ""
    slug: str = ""
    description: str = ""
    rows: list[Row] | None = None
    sort_field: str = ""
    sort_descending: bool = False
    filters: list[tuple[str, str, str]] | None = None
    search: bool = True
    page_size: str = str(DEFAULT_PAGE_SIZE)
    actions: tuple[str, ...] = ACTIONS


def all_fields(table: TableDef) -> list[Field]:
    return [*table.fields, *SYSTEM_FIELDS.values()]


def generated(table: TableDef) -> Design:
    """The table's generated page, spelled out so that it can be customised."""
    rows = []
    for i, f in enumerate(all_fields(table)):
        user = f.name not in SYSTEM_FIELDS
        rows.append(
            Row(
                f,
                column=user and i < DEFAULT_COLUMNS,
                column_position=str(i + 1),
                user_filter=user,
                role="editable" if user else "left_out",
                form_position=str(i + 1),
            )
        )
    return Design(rows=rows, filters=[("", "eq", "")] * BLANK_FILTERS)


def of_page(page: Page, table: TableDef) -> Design:
    """A stored page in the designer's terms (what names a deleted field is left out)."""
    design = generated(table)
    columns = {c.field: (i, c.label) for i, c in enumerate(page.columns or ())}
    placed = {
        name: (s.title, i * 100 + j)
        for i, s in enumerate(page.sections or ())
        for j, name in enumerate(s.fields)
    }
    for row in design.rows or []:
        name = row.field.name
        if page.columns is not None:
            row.column = name in columns
            row.column_position = str(columns[name][0] + 1) if name in columns else ""
            row.label = (columns[name][1] or "") if name in columns else ""
        if page.user_filters is not None:
            row.user_filter = name in page.user_filters
        if page.sections is not None and not row.system:
            row.role = "editable" if name in placed else "left_out"
            row.section, position = placed.get(name, ("", 0))
            row.form_position = str(position + 1) if name in placed else ""
        if name in page.read_only and row.role == "editable":
            row.role = "read_only"
        if name in page.hidden:
            row.role, row.fixed = "hidden", _text(page.hidden[name])
        row.help = page.help.get(name, "")
    sort = (page.sort or "").split(",")[0]
    design.title, design.slug, design.description = page.title, page.slug, page.description or ""
    design.sort_field, design.sort_descending = sort.removeprefix("-"), sort.startswith("-")
    design.filters = [(f.field, f.op, _text(f.value)) for f in page.filters]
    design.filters += [("", "eq", "")] * BLANK_FILTERS
    design.search, design.page_size = page.search, str(page.page_size)
    design.actions = tuple(a for a in ACTIONS if page.actions.get(a))
    return design


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


def of_form(form: Form, table: TableDef) -> Design:
    """The designer as posted (to show it again, with its problems)."""
    rows = []
    for f in all_fields(table):
        n = f.name
        rows.append(
            Row(
                f,
                column=form.has(f"col.{n}"),
                label=form.get(f"label.{n}"),
                column_position=form.get(f"colpos.{n}"),
                user_filter=form.has(f"uf.{n}"),
                role=form.get(f"role.{n}", "left_out"),
                section=form.get(f"section.{n}"),
                form_position=form.get(f"formpos.{n}"),
                fixed=form.get(f"fixed.{n}"),
                help=form.get(f"help.{n}"),
            )
        )
    fields, ops, values = (form.getlist(f"filter.{k}") for k in ("field", "op", "value"))
    return Design(
        title=form.get("title"),
        slug=form.get("slug"),
        description=form.get("description"),
        rows=rows,
        sort_field=form.get("sort_field"),
        sort_descending=form.get("sort_direction") == "desc",
        filters=list(zip(fields, ops, values, strict=False)),
        search=form.has("search"),
        page_size=form.get("page_size"),
        actions=tuple(a for a in ACTIONS if form.has(f"action.{a}")),
    )


def spec_of(design: Design, table: TableDef) -> dict[str, Any]:
    """The page's JSON, for the page store to check and keep."""
    rows = design.rows or []

    def position(raw: str, default: int) -> tuple[float, int]:
        try:
            return float(raw), default
        except ValueError:
            return float("inf"), default

    columns = sorted(
        ((position(r.column_position, i), r) for i, r in enumerate(rows) if r.column),
        key=lambda pair: pair[0],
    )
    shown = sorted(
        ((position(r.form_position, i), r) for i, r in enumerate(rows) if _on_form(r)),
        key=lambda pair: pair[0],
    )
    sections: dict[str, list[str]] = {}
    for _, r in shown:
        sections.setdefault(r.section.strip(), []).append(r.field.name)
    return {
        "slug": design.slug.strip(),
        "title": design.title.strip(),
        "description": design.description.strip() or None,
        "columns": [
            {"field": r.field.name, "label": r.label.strip()} if r.label.strip() else r.field.name
            for _, r in columns
        ],
        "sort": (("-" if design.sort_descending else "") + design.sort_field)
        if design.sort_field
        else None,
        "filters": [_filter(table, *f) for f in design.filters or [] if f[0]],
        "user_filters": [r.field.name for r in rows if r.user_filter],
        "search": design.search,
        "page_size": int(design.page_size) if design.page_size.strip().isdigit() else None,
        "sections": [{"title": t, "fields": names} for t, names in sections.items()],
        "read_only": [r.field.name for r in rows if r.role == "read_only" and not r.system],
        "hidden": {r.field.name: _value(r.field, r.fixed) for r in rows if _hidden(r)},
        "help": {r.field.name: r.help.strip() for r in rows if r.help.strip() and not r.system},
        "actions": {a: a in design.actions for a in ACTIONS},
    }


def _on_form(row: Row) -> bool:
    return not row.system and row.role in ("editable", "read_only")


def _hidden(row: Row) -> bool:
    return not row.system and row.role == "hidden"


def _filter(table: TableDef, name: str, op: str, raw: str) -> dict[str, Any]:
    f = table.queryable.get(name)
    if op == "isnull":
        return {"field": name, "op": op, "value": raw.strip().lower() not in ("false", "0", "no")}
    if f is None:
        return {"field": name, "op": op, "value": raw}
    if op == "in":
        return {"field": name, "op": op, "value": [_value(f, v) for v in raw.split(",")]}
    return {"field": name, "op": op, "value": _value(f, raw)}


def _value(f: Field, raw: str) -> Any:
    """A typed value as JSON for its field; as typed when it does not fit (the page
    store then names the problem)."""
    if f.type in (FieldType.TEXT, FieldType.SELECT) and raw.strip():
        return raw
    try:
        return to_json(f, from_text(f, raw.strip()))
    except Invalid:
        return raw


def filter_ops(table: TableDef) -> dict[str, tuple[str, ...]]:
    return {f.name: operators(f) for f in all_fields(table)}
