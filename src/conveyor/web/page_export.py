"""A custom page's list as CSV: every record it shows (all its pages), streamed.

Records are read a batch at a time with the records query's keyset cursor, so an export
of any size holds one batch in memory and each batch is one short read. The header
`X-Total-Count` (the count when the export starts) lets the back-office show progress.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from conveyor.platform import Platform
from conveyor.storage.fields import Field, FieldType
from conveyor.storage.page_check import Resolved
from conveyor.web.record_list import Listing

BATCH = 500
Labels = dict[str, dict[int, str]]
LabelsOf = Callable[[Platform, Any, list[dict[str, Any]]], Awaitable[Labels]]


def cell(field: Field, value: Any, labels: Labels) -> str:
    """A value as the list shows it, in plain text."""
    if value is None:
        return ""
    if field.type is FieldType.BOOLEAN:
        return "yes" if value else "no"
    if field.type is FieldType.REFERENCE:
        label = labels.get(field.name, {}).get(value)
        return f"#{value} {label}" if label else f"#{value}"
    if field.type is FieldType.JSON:
        return orjson.dumps(value).decode()
    return str(value)


def params(listing: Listing) -> list[tuple[str, str]]:
    """The list's query without its page: filters, search, sort."""
    pairs = [f.param for f in listing.filters]
    if listing.q.strip():
        pairs.append(("q", listing.q))
    if listing.sort:
        pairs.append(("sort", listing.sort))
    return pairs


async def rows(
    platform: Platform, page: Resolved, listing: Listing, labels_of: LabelsOf
) -> AsyncIterator[str]:
    """The CSV text, a batch of records at a time (the header first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Id", *(label for _, label in page.columns)])
    yield _taken(buffer)
    cursor: str | None = None
    query = params(listing)
    while True:
        batch = [*query, ("limit", str(BATCH))] + ([("cursor", cursor)] if cursor else [])
        items, cursor, _ = await platform.storage.records.query(
            page.table.name, batch, fixed=page.page.filters
        )
        labels = await labels_of(platform, page.table, items)
        for item in items:
            writer.writerow(
                [item["id"], *(cell(f, item.get(f.name), labels) for f, _ in page.columns)]
            )
        yield _taken(buffer)
        if cursor is None:
            return


def _taken(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
