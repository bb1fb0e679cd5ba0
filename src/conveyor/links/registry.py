"""Links, stored next to the queues they publish to."""

from __future__ import annotations

import secrets

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db import Database
from conveyor.db.tables import links
from conveyor.db.types import utcnow
from conveyor.exceptions import NotFound
from conveyor.links.model import Link, LinkSpec


class LinkNotFound(NotFound):
    """Link not found."""

    code = "link_not_found"


class LinkRegistry:
    def __init__(self, db: Database) -> None:
        self._db = db

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
        return link

    async def delete_table(self, conn: AsyncConnection, table_name: str) -> None:
        """Drop a table's links, in the transaction that drops the table."""
        await conn.execute(delete(links).where(links.c.table_name == table_name))

    @staticmethod
    async def for_write(conn: AsyncConnection, table_name: str) -> list[Link]:
        """The table's links, read inside the write's own transaction so that a link
        created a moment ago in another process is honoured by this write."""
        rows = await conn.execute(select(links).where(links.c.table_name == table_name))
        return [Link.from_row(row) for row in rows]
