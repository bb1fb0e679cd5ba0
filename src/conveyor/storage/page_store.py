"""Custom pages of tables, stored as JSON beside the table's definition (scope `admin`).

A page names fields. A field rename rewrites the pages of its table in the rename's own
transaction (`rename_field`), so that no page ever names a field that was renamed;
a deleted field stays named, and `page_check` reports it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db import Database
from conveyor.db.tables import storage_pages, storage_tables
from conveyor.db.types import utcnow
from conveyor.exceptions import Conflict, PageNotFound, ValidationError
from conveyor.storage import page_spec
from conveyor.storage.catalog import Catalog
from conveyor.storage.page_check import Resolved, resolve
from conveyor.storage.page_spec import Page

#: More pages than anyone browses; a bound on what one table can hold.
MAX_PAGES = 200


@dataclass(frozen=True)
class StoredPage:
    table: str
    page: Page
    created_at: datetime
    updated_at: datetime

    def to_json(self, problems: list[dict[str, Any]]) -> dict[str, Any]:
        return self.page.to_json() | {
            "table": self.table,
            "problems": problems,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class PageLink:
    """A page as the navigation lists it."""

    table: str
    table_label: str
    slug: str
    title: str


class PageStore:
    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db = db
        self.catalog = catalog

    async def all(self, table_name: str) -> list[StoredPage]:
        async with self.db.read() as conn:
            table = await self.catalog.get(conn, table_name)
            rows = await conn.execute(
                sa.select(storage_pages)
                .where(storage_pages.c.table_id == table.id)
                .order_by(storage_pages.c.title, storage_pages.c.slug)
            )
            return [_stored(table.name, row) for row in rows]

    async def links(self) -> list[PageLink]:
        """Every page of every table, by table then title."""
        query = (
            sa.select(
                storage_tables.c.name,
                storage_tables.c.label,
                storage_pages.c.slug,
                storage_pages.c.title,
            )
            .join(storage_tables, storage_tables.c.id == storage_pages.c.table_id)
            .order_by(storage_tables.c.name, storage_pages.c.title, storage_pages.c.slug)
        )
        async with self.db.read() as conn:
            return [PageLink(*row) for row in await conn.execute(query)]

    async def get(self, table_name: str, slug: str) -> StoredPage:
        async with self.db.read() as conn:
            table = await self.catalog.get(conn, table_name)
            return await self._get(conn, table.id, table.name, slug)

    async def resolved(self, table_name: str, slug: str) -> Resolved:
        """The page and its table read together, fitted to each other."""
        async with self.db.read() as conn:
            table = await self.catalog.get(conn, table_name)
            stored = await self._get(conn, table.id, table.name, slug)
        return resolve(stored.page, table)

    async def create(self, table_name: str, spec: object) -> StoredPage:
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, table_name, lock="update")
            page = _checked(spec, table_name, resolve_with=table)
            count = await conn.scalar(
                sa.select(sa.func.count()).where(storage_pages.c.table_id == table.id)
            )
            if (count or 0) >= MAX_PAGES:
                raise Conflict(f"table {table_name!r} has {MAX_PAGES} pages, the most it can")
            now = utcnow()
            row = {"id": secrets.token_hex(10), "table_id": table.id, "created_at": now}
            await self._insert(conn, row | _values(page, now))
            return await self._get(conn, table.id, table.name, page.slug)

    async def put(self, table_name: str, slug: str, spec: object) -> tuple[StoredPage, bool]:
        """Replace page `slug` (or create it); a new `slug` in `spec` moves the page there.
        True when it was created."""
        if isinstance(spec, dict) and spec.get("slug") is None:
            spec = spec | {"slug": slug}
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, table_name, lock="update")
            page = _checked(spec, table_name, resolve_with=table)
            where = sa.and_(storage_pages.c.table_id == table.id, storage_pages.c.slug == slug)
            now = utcnow()
            try:
                changed = (
                    await conn.execute(
                        sa.update(storage_pages).where(where).values(_values(page, now))
                    )
                ).rowcount
            except IntegrityError:
                raise Conflict(f"table {table_name!r} has a page {page.slug!r} already") from None
            if not changed:
                if page.slug != slug:
                    raise PageNotFound(f"table {table_name!r} has no page {slug!r} to move")
                row = {"id": secrets.token_hex(10), "table_id": table.id, "created_at": now}
                await self._insert(conn, row | _values(page, now))
            return await self._get(conn, table.id, table.name, page.slug), not changed

    async def delete(self, table_name: str, slug: str) -> None:
        async with self.db.write() as conn:
            table = await self.catalog.get(conn, table_name)
            deleted = await conn.execute(
                sa.delete(storage_pages).where(
                    storage_pages.c.table_id == table.id, storage_pages.c.slug == slug
                )
            )
            if not deleted.rowcount:
                raise PageNotFound(f"table {table_name!r} has no page {slug!r}")

    async def rename_field(self, conn: AsyncConnection, table_id: str, old: str, new: str) -> None:
        """Make the table's pages name `new` for `old`, inside the rename's transaction."""
        rows = await conn.execute(
            sa.select(storage_pages).where(storage_pages.c.table_id == table_id)
        )
        for row in rows.all():
            page = _page_of(row).renamed(old, new)
            await conn.execute(
                sa.update(storage_pages)
                .where(storage_pages.c.id == row.id)
                .values(definition=_definition(page))
            )

    async def _insert(self, conn: AsyncConnection, row: dict[str, Any]) -> None:
        try:
            await conn.execute(sa.insert(storage_pages).values(row))
        except IntegrityError:
            raise Conflict(f"this table has a page {row['slug']!r} already") from None

    async def _get(self, conn: AsyncConnection, table_id: str, table: str, slug: str) -> StoredPage:
        row = (
            await conn.execute(
                sa.select(storage_pages).where(
                    storage_pages.c.table_id == table_id, storage_pages.c.slug == slug
                )
            )
        ).first()
        if row is None:
            raise PageNotFound(f"table {table!r} has no page {slug!r}")
        return _stored(table, row)


def _checked(spec: object, table_name: str, *, resolve_with: Any) -> Page:
    page, problems = page_spec.parse(spec)
    if page is not None:
        problems = resolve(page, resolve_with).problems
    if problems:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        raise ValidationError(f"invalid page for {table_name!r}: {summary}", details=problems)
    assert page is not None
    return page


def _definition(page: Page) -> dict[str, Any]:
    """What the row's JSON column keeps: everything but the slug and title."""
    return {k: v for k, v in page.to_json().items() if k not in ("slug", "title")}


def _values(page: Page, now: datetime) -> dict[str, Any]:
    return {
        "slug": page.slug,
        "title": page.title,
        "definition": _definition(page),
        "updated_at": now,
    }


def _page_of(row: Any) -> Page:
    page, problems = page_spec.parse(dict(row.definition) | {"slug": row.slug, "title": row.title})
    if page is None:  # written by `_values` after the same parse
        raise RuntimeError(f"stored page {row.slug!r} no longer parses: {problems}")
    return page


def _stored(table: str, row: Any) -> StoredPage:
    return StoredPage(table, _page_of(row), row.created_at, row.updated_at)
