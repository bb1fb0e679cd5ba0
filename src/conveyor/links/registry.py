"""Links, stored next to the queues they publish to."""

from __future__ import annotations

import secrets
from typing import Protocol

from cachetools import LRUCache
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db import Database
from conveyor.db.tables import links, storage_tables
from conveyor.db.types import utcnow
from conveyor.exceptions import NotFound
from conveyor.links.model import Link, LinkSpec


class LinkNotFound(NotFound):
    """Link not found."""

    code = "link_not_found"


class VersionedTable(Protocol):
    """What the write hook knows of a table: its definition's id and version."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...


class LinkRegistry:
    """Links are part of a table's definition: changing them bumps the table's version,
    which every record write reads in its own transaction, so a write's hook can trust
    links cached for that version and skip a query."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._by_version: LRUCache[tuple[str, int], list[Link]] = LRUCache(maxsize=4096)

    async def put(self, table_name: str, queue_id: str, spec: LinkSpec) -> tuple[Link, bool]:
        """Create or replace the link; True when it was created."""
        now = utcnow()
        values = {"events": list(spec.events), "handler": spec.handler, "mode": spec.mode.value}
        where = and_(links.c.table_name == table_name, links.c.queue_id == queue_id)
        async with self._db.write() as conn:
            changed = (
                await conn.execute(update(links).where(where).values({**values, "updated_at": now}))
            ).rowcount
            if not changed:
                await conn.execute(
                    insert(links).values(
                        {
                            **values,
                            "id": secrets.token_hex(10),
                            "table_name": table_name,
                            "queue_id": queue_id,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                )
            row = (await conn.execute(select(links).where(where))).one()
            await _bump(conn, table_name)
        return Link.from_row(row), not changed

    async def all(self, table_name: str | None = None) -> list[Link]:
        query = select(links).order_by(links.c.table_name, links.c.created_at)
        if table_name is not None:
            query = query.where(links.c.table_name == table_name)
        async with self._db.read() as conn:
            return [Link.from_row(row) for row in await conn.execute(query)]

    async def get(self, table_name: str, queue_id: str) -> Link:
        where = and_(links.c.table_name == table_name, links.c.queue_id == queue_id)
        async with self._db.read() as conn:
            row = (await conn.execute(select(links).where(where))).first()
        if row is None:
            raise LinkNotFound(f"table {table_name!r} has no link to that queue")
        return Link.from_row(row)

    async def delete(self, table_name: str, queue_id: str) -> Link:
        link = await self.get(table_name, queue_id)
        async with self._db.write() as conn:
            await conn.execute(delete(links).where(links.c.id == link.id))
            await _bump(conn, table_name)
        return link

    async def delete_table(self, conn: AsyncConnection, table_name: str) -> None:
        """Drop a table's links, in the transaction that drops the table."""
        await conn.execute(delete(links).where(links.c.table_name == table_name))

    async def for_write(self, conn: AsyncConnection, table: VersionedTable) -> list[Link]:
        """The links of `table` at the version the write read in its own transaction
        (so a link created a moment ago in another process is honoured)."""
        key = (table.id, table.version)
        cached = self._by_version.get(key)
        if cached is None:
            rows = await conn.execute(select(links).where(links.c.table_name == table.name))
            cached = self._by_version[key] = [Link.from_row(row) for row in rows]
        return cached


async def _bump(conn: AsyncConnection, table_name: str) -> None:
    """A new version of the table's definition: every process reloads its links."""
    await conn.execute(
        update(storage_tables)
        .where(storage_tables.c.name == table_name)
        .values(version=storage_tables.c.version + 1)
    )
