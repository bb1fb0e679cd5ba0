"""A custom page's record form: its sections of inputs, read-only values and help,
the record a posted form gives (hidden fields with their fixed values), and the list's
view of the URL (only the filters the page offers)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from conveyor.storage.page_check import Resolved
from conveyor.web import record_form, record_list
from conveyor.web.forms import Form
from conveyor.web.record_form import Widget

Problem = dict[str, Any]


@dataclass(frozen=True)
class Item:
    """One field of a section: an input, or (read-only) its value shown as text."""

    widget: Widget
    read_only: bool


def sections(page: Resolved) -> list[tuple[str, list[Item]]]:
    shown = []
    for title, fields in page.sections:
        items = []
        for f in fields:
            w = record_form.widget(f)
            if f.name in page.help:
                w = replace(w, hint=page.help[f.name])
            items.append(Item(w, f.name in page.read_only))
        shown.append((title, items))
    return shown


def editable(page: Resolved) -> list[Widget]:
    return [i.widget for _, items in sections(page) for i in items if not i.read_only]


def record_of(
    page: Resolved, form: Form, shown: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """What the form writes: its editable fields, and on a create the hidden values."""
    data, problems = record_form.record_of(page.table, form, shown, editable(page))
    if shown is None:
        data |= page.hidden
    return data, problems


def listing(page: Resolved, base: str, params: Iterable[tuple[str, str]]) -> record_list.Listing:
    """The list a page's URL asks for, with the page's own sort and page size by default."""
    pairs = list(params)
    read = record_list.read(pairs)
    sizes = (*record_list.PAGE_SIZES, page.page.page_size)
    size = read.size if any(k == "size" for k, _ in pairs) else page.page.page_size
    size = size if size in sizes else page.page.page_size
    return replace(
        read,
        q=read.q if page.search else "",
        sort=read.sort or page.sort,
        size=size,
        page=min(read.page, record_list.MAX_OFFSET // size),
        base=base,
        default_size=page.page.page_size,
    )


def foreign_filters(page: Resolved, listing: record_list.Listing) -> list[str]:
    """The filters in the URL that the page does not offer to its users."""
    offered = {f.name for f in page.user_filters}
    return [f.field for f in listing.filters if f.field not in offered]


def page_sizes(page: Resolved) -> list[int]:
    return sorted({*record_list.PAGE_SIZES, page.page.page_size})
