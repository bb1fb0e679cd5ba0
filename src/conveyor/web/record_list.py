"""A table's record list: its URL's query string, the records query it runs, and the
links (sorting, pages, removing a filter) that keep the rest of the view.

The URL speaks the records API's own syntax (`?q=…&sort=-age&age[gte]=18&page=2`), so
a list can be bookmarked or shared. The filter form, which cannot name its inputs
`field[op]`, sends `op.<field>` and `v.<field>` pairs; they are read as the same
filters, and every link on the page is written back in the API's syntax.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from conveyor.storage.fields import Field, FieldType
from conveyor.storage.model import TableDef
from conveyor.storage.query import operators

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_SIZE = 50
#: The records query's deepest offset.
MAX_OFFSET = 10_000_000
#: The list shows the id, this many fields, and the last change.
COLUMNS = 8
_FILTER = re.compile(r"^([a-z][a-z0-9_]{0,62})(?:\[([a-z]{1,12})\])?$")
OP_LABELS = {
    "eq": "is",
    "ne": "is not",
    "lt": "<",
    "lte": "≤",
    "gt": ">",
    "gte": "≥",
    "contains": "contains",
    "icontains": "contains (any case)",
    "startswith": "starts with",
    "in": "is one of (a,b,…)",
    "isnull": "is empty",
}


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: str

    @property
    def param(self) -> tuple[str, str]:
        return (self.field if self.op == "eq" else f"{self.field}[{self.op}]", self.value)

    def describe(self, table: TableDef) -> str:
        f = table.queryable.get(self.field)
        label = (f.label or f.name) if f else self.field
        if self.op == "isnull":
            return f"{label} {'is empty' if self.value in ('true', '1') else 'is not empty'}"
        return f"{label} {OP_LABELS.get(self.op, self.op)} {self.value}"


@dataclass(frozen=True)
class Listing:
    """What the list shows: filters, search, sort and page."""

    filters: tuple[Filter, ...] = ()
    q: str = ""
    sort: str = ""
    page: int = 1
    size: int = DEFAULT_SIZE
    #: The list's own path (a custom page's), and the page size its URL may leave out.
    base: str = ""
    default_size: int = DEFAULT_SIZE

    def query(self) -> list[tuple[str, str]]:
        """The records query (`Records.query`) for this list, counting the matches."""
        params = [f.param for f in self.filters]
        if self.q.strip():
            params.append(("q", self.q))
        if self.sort:
            params.append(("sort", self.sort))
        params += [("limit", str(self.size)), ("page", str(self.page)), ("count", "true")]
        return params

    def url(self, table: str, **changes: object) -> str:
        """This list's URL with some parts changed (a new sort goes back to page 1)."""
        listing = replace(self, **changes)  # type: ignore[arg-type]
        params = [f.param for f in listing.filters]
        if listing.q:
            params.append(("q", listing.q))
        if listing.sort:
            params.append(("sort", listing.sort))
        if listing.page != 1:
            params.append(("page", str(listing.page)))
        if listing.size != listing.default_size:
            params.append(("size", str(listing.size)))
        path = self.base or f"/admin/tables/{table}"
        return path + (f"?{urlencode(params)}" if params else "")

    def without(self, table: str, index: int) -> str:
        kept = self.filters[:index] + self.filters[index + 1 :]
        return self.url(table, filters=kept, page=1)

    def sorted_by(self, table: str, name: str) -> str:
        """The link of a column header: sort by it, or reverse it when it is the sort."""
        return self.url(table, sort=f"-{name}" if self.sort == name else name, page=1)

    def direction(self, name: str) -> str | None:
        """aria-sort of a column header."""
        if self.sort == name:
            return "ascending"
        if self.sort == f"-{name}":
            return "descending"
        return None

    def first_filter(self, name: str) -> Filter | None:
        return next((f for f in self.filters if f.field == name), None)


def read(params: Iterable[tuple[str, str]]) -> Listing:
    """The list a URL asks for. Anything malformed is passed on to the records query,
    which refuses it with a 400 that names the parameter."""
    filters: list[Filter] = []
    form: dict[str, dict[str, str]] = {}
    control: dict[str, str] = {}
    for name, value in params:
        if name in ("q", "sort", "page", "size"):
            control.setdefault(name, value)
        elif name == "notice":
            continue  # the page's own message after a change
        elif name.startswith(("op.", "v.")):
            kind, _, field = name.partition(".")
            form.setdefault(field, {})[kind] = value
        elif (match := _FILTER.match(name)) is not None:
            filters.append(Filter(match.group(1), match.group(2) or "eq", value))
        else:
            filters.append(Filter(name, "eq", value))
    for field, pair in form.items():
        op, value = pair.get("op", "eq"), pair.get("v", "")
        if op in ("isnull", "notnull"):
            filters.append(Filter(field, "isnull", "true" if op == "isnull" else "false"))
        elif op and value.strip():
            filters.append(Filter(field, op, value.strip()))
    size = int(control["size"]) if control.get("size", "").isdigit() else DEFAULT_SIZE
    size = size if size in PAGE_SIZES else DEFAULT_SIZE
    page = control.get("page", "1")
    page_number = int(page) if page.isdigit() and 0 < len(page) <= 9 and int(page) >= 1 else 1
    return Listing(
        filters=tuple(filters),
        q=control.get("q", "").strip(),
        sort=control.get("sort", "").strip(),
        page=min(page_number, MAX_OFFSET // size),
        size=size,
    )


def columns(table: TableDef) -> list[Field]:
    """The first fields, in order, up to `COLUMNS`, every reference field among them
    (it names a related record, which a list reader needs)."""
    references = [f for f in table.fields if f.type is FieldType.REFERENCE]
    room = max(COLUMNS - len(references), 0)
    others = [f for f in table.fields if f.type is not FieldType.REFERENCE][:room]
    return [f for f in table.fields if f in references or f in others]


def filter_ops(f: Field) -> list[tuple[str, str]]:
    """(value, label) of the filter form's operator menu for a field."""
    ops = [(op, OP_LABELS[op]) for op in operators(f) if op != "isnull"]
    if not ops:  # json fields: only empty or not, so "any" must come first
        ops = [("", "any")]
    return [*ops, ("isnull", "is empty"), ("notnull", "is not empty")]


def form_op(listing: Listing, name: str) -> str:
    """The operator the filter form shows selected for a field."""
    found = listing.first_filter(name)
    if found is None:
        return "eq"  # or, where "eq" is not offered, the first option: "any"
    if found.op == "isnull":
        return "isnull" if found.value in ("true", "1") else "notnull"
    return found.op
