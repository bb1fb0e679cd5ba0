"""Records: create, read, update, delete and query, with hooks inside the write transaction.

Each write method takes an optional connection. Without one it opens its own write
transaction; with one it joins the caller's. Either way every hook in `hooks` runs
inside that same transaction, after the write and before the commit, so that what a
hook writes (an outbox row, say) commits or rolls back together with the record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db import Database, bulk
from conveyor.db.pipeline import flush
from conveyor.db.tables import storage_tables
from conveyor.db.types import utcnow
from conveyor.exceptions import PayloadTooLarge, RecordNotFound, ValidationError
from conveyor.storage import integrity, pages
from conveyor.storage.catalog import Catalog
from conveyor.storage.creates import Creates
from conveyor.storage.model import TableDef
from conveyor.storage.page_spec import FixedFilter
from conveyor.storage.query import fixed_filters, parse
from conveyor.storage.validate import Checked, check, invalid, references

MAX_BULK = 1000
#: Reads retried while a definition change lands under them (see `Records._read`).
READ_ATTEMPTS = 5
T = TypeVar("T")
Event = Literal["create", "update", "delete"]
Record = dict[str, Any]
#: Called as hook(conn, table, event, record, previous) inside the write transaction:
#: create → (new, None), update → (new, old), delete → (None, old). Records are JSON-ready.
WriteHook = Callable[
    [AsyncConnection, TableDef, Event, Record | None, Record | None], Awaitable[None]
]


def serialize(table: TableDef, row: Mapping[str, Any] | sa.RowMapping) -> Record:
    """A stored row as the API returns it (see `TableDef.record`)."""
    return table.record(row)


class Records:
    """Record reads and writes for every table; `hooks` run inside each write."""

    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db = db
        self.catalog = catalog
        self.hooks: list[WriteHook] = []
        self._creates = Creates(db, self.hooks, self._created)

    async def close(self) -> None:
        """Stop batching creates (those waiting for a commit fail)."""
        await self._creates.close()

    async def _created(self, conn: AsyncConnection, table: TableDef, record: Record) -> None:
        await self.on_write(conn, table, "create", record, None)

    @asynccontextmanager
    async def _transaction(self, conn: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
        if conn is not None:
            yield conn
            return
        async with self.db.write() as own:
            yield own

    @asynccontextmanager
    async def _writing(
        self, table_name: str, conn: AsyncConnection | None
    ) -> AsyncIterator[tuple[AsyncConnection, TableDef]]:
        async with self._transaction(conn) as conn:
            yield conn, await self.catalog.get(conn, table_name, lock="share")

    async def on_write(
        self,
        conn: AsyncConnection,
        table: TableDef,
        event: Event,
        record: Record | None,
        previous: Record | None,
    ) -> None:
        """Run the hooks; override or append to `hooks` to act in the write transaction."""
        for hook in self.hooks:
            await hook(conn, table, event, record, previous)

    async def create(
        self, table_name: str, data: object, *, conn: AsyncConnection | None = None
    ) -> Record:
        # Checked against the cached definition, a create joins the next batch
        # (`conveyor.storage.creates`), which stores it only if that definition is
        # still current; otherwise, or inside a caller's transaction, the long way.
        cached = self.catalog.cached(table_name) if conn is None else None
        if cached is not None:
            checked, problems = await check(cached, data)
            if checked is not None and not problems and self._batchable(cached, checked):
                record = await self._creates.create(cached, checked)
                if record is not None:
                    return record
        async with self._writing(table_name, conn) as (conn, table):
            checked = await self._checked(conn, table, data)
            await self._check_references(conn, table, [(None, checked)])
            statement = sa.insert(table.sql).values(_stamped(checked.values))
            with integrity.translated(table):
                result = await conn.execute(statement.returning(*_columns(table)))
                row = result.mappings().one()
            record = serialize(table, row)
            await self.on_write(conn, table, "create", record, None)
            return record

    async def _checked(
        self,
        conn: AsyncConnection,
        table: TableDef,
        data: object,
        old: Mapping[str, Any] | None = None,
        record_id: int | None = None,
    ) -> Checked:
        """The checked write, or a 422 listing every problem: unique values taken by
        other records too, when there are other problems (otherwise the unique index
        alone decides, with a 409)."""
        checked, problems = await check(table, data, old)
        if problems:
            if checked is not None:
                bad = {p["field"] for p in problems}
                problems += await integrity.taken(
                    conn, table, checked, record_id=record_id, skip=bad
                )
            raise invalid(problems)
        assert checked is not None
        return checked

    def _batchable(self, table: TableDef, checked: Checked) -> bool:
        """PostgreSQL fails a whole batch on a broken constraint: a reference, which may
        well name a missing record, goes the long way there, where it is checked first."""
        return self.db.dialect == "sqlite" or not references(table, checked.values)

    async def create_many(
        self, table_name: str, items: object, *, conn: AsyncConnection | None = None
    ) -> list[Record]:
        """All of `items`, or none: problems are reported with each item's index."""
        if not isinstance(items, list) or not items:
            raise ValidationError(
                "give a non-empty list of records",
                details=[{"field": "records", "rule": None, "message": "must be a non-empty list"}],
            )
        if len(items) > MAX_BULK:
            raise PayloadTooLarge(f"at most {MAX_BULK} records per bulk request")
        async with self._writing(table_name, conn) as (conn, table):
            checked: list[tuple[int | None, Checked]] = []
            problems = []
            for index, item in enumerate(items):
                one, found = await check(table, item)
                problems += [p | {"index": index} for p in found]
                if one is not None:
                    checked.append((index, one))
            if problems:
                raise invalid(problems)
            await self._check_references(conn, table, checked)
            await integrity.check_unique(conn, table, checked)
            names = tuple(f.name for f in table.fields)
            spec = bulk.Spec(
                table.sql,
                names,
                tuple(c.name for c in table.stored),
                constants=("created_at", "updated_at"),
            )
            now = utcnow()
            rows = [{name: c.values.get(name) for name in names} for _, c in checked]
            with integrity.translated(table):
                inserted = await bulk.insert(conn, spec, rows, constants=(now, now))
                await flush(conn)  # SQLite: a broken constraint is raised here
            records = [
                serialize(table, dict(zip(spec.returning, row, strict=True)))
                for row in inserted.rows()
                if row is not None
            ]
            for record in records:
                await self.on_write(conn, table, "create", record, None)
            return records

    async def get(self, table_name: str, record_id: int) -> Record:
        async def read(conn: AsyncConnection, table: TableDef) -> Record:
            return serialize(table, await self._row(conn, table, record_id))

        return await self._read(table_name, read)

    async def update(
        self,
        table_name: str,
        record_id: int,
        data: object,
        *,
        conn: AsyncConnection | None = None,
    ) -> Record:
        async with self._writing(table_name, conn) as (conn, table):
            old = await self._row(conn, table, record_id, lock=True)
            checked = await self._checked(conn, table, data, old, record_id)
            await self._check_references(conn, table, [(None, checked)])
            previous = serialize(table, old)
            if not checked.values:
                return previous
            values = checked.values | {"updated_at": utcnow()}
            statement = (
                sa.update(table.sql)
                .where(table.sql.c.id == record_id)
                .values(values)
                .returning(*_columns(table))
            )
            with integrity.translated(table):
                row = (await conn.execute(statement)).mappings().one()
            record = serialize(table, row)
            await self.on_write(conn, table, "update", record, previous)
            return record

    async def delete(
        self, table_name: str, record_id: int, *, conn: AsyncConnection | None = None
    ) -> Record:
        async with self._writing(table_name, conn) as (conn, table):
            previous = serialize(table, await self._row(conn, table, record_id, lock=True))
            with integrity.translated(table):
                await conn.execute(sa.delete(table.sql).where(table.sql.c.id == record_id))
            await self.on_write(conn, table, "delete", None, previous)
            return previous

    async def query(
        self,
        table_name: str,
        params: Iterable[tuple[str, str]],
        *,
        fixed: Sequence[FixedFilter] = (),
    ) -> tuple[list[Record], str | None, int | None]:
        """A page of records for the query-string pairs `params`, within the `fixed`
        filters of a custom page (those that no longer fit the table are left out)."""
        pairs = list(params)

        async def read(
            conn: AsyncConnection, table: TableDef
        ) -> tuple[list[Record], str | None, int | None]:
            query = parse(table, pairs)
            if fixed:
                query = replace(query, filters=[*fixed_filters(table, fixed), *query.filters])
            page = await pages.fetch(conn, table, query)
            return [serialize(table, row) for row in page.rows], page.next_cursor, page.total

        return await self._read(table_name, read)

    async def _read(
        self, table_name: str, read: Callable[[AsyncConnection, TableDef], Awaitable[T]]
    ) -> T:
        """`read(conn, table)` in a read transaction, again while the table changes under it.

        Readers take no lock on the catalogue: a definition change that commits between
        reading the definition and reading the rows makes the query name a column that
        is gone. Such a failure is retried with the new definition as long as the
        definition keeps moving (several changes in a row can each land in that gap); a
        failure at an unchanged version is a real one and is raised.
        """
        for _ in range(READ_ATTEMPTS - 1):
            table: TableDef | None = None
            try:
                async with self.db.read() as conn:
                    table = await self.catalog.get(conn, table_name)
                    return await read(conn, table)
            except (ProgrammingError, OperationalError):
                if table is None or not await self._changed_since(table):
                    raise
        async with self.db.read() as conn:
            return await read(conn, await self.catalog.get(conn, table_name))

    async def _changed_since(self, table: TableDef) -> bool:
        async with self.db.read() as conn:
            current = await conn.scalar(
                sa.select(storage_tables.c.version).where(storage_tables.c.id == table.id)
            )
        return current != table.version

    async def _row(
        self, conn: AsyncConnection, table: TableDef, record_id: int, *, lock: bool = False
    ) -> dict[str, Any]:
        statement = sa.select(*_columns(table)).where(table.sql.c.id == record_id)
        if lock and table.dialect == "postgresql":
            statement = statement.with_for_update()
        row = (await conn.execute(statement)).mappings().first()
        if row is None:
            raise RecordNotFound(f"table {table.name!r} has no record {record_id}")
        return dict(row)

    async def _check_references(
        self, conn: AsyncConnection, table: TableDef, checked: list[tuple[int | None, Checked]]
    ) -> None:
        """422 for each reference to a record that does not exist (named by field and index)."""
        wanted: dict[str, set[int]] = {}
        for _, one in checked:
            for name, value in references(table, one.values).items():
                wanted.setdefault(name, set()).add(value)
        problems = []
        for name, ids in wanted.items():
            target_name = table.field_map[name].table
            assert target_name is not None
            target = (
                table if target_name == table.name else await self.catalog.get(conn, target_name)
            )
            found = set(
                (
                    await conn.execute(sa.select(target.sql.c.id).where(target.sql.c.id.in_(ids)))
                ).scalars()
            )
            for index, one in checked:
                wanted_id = one.values.get(name)
                if wanted_id is not None and wanted_id not in found:
                    problem = {
                        "field": name,
                        "rule": "reference",
                        "message": f"no record {wanted_id} in table {target_name!r}",
                    }
                    problems.append(problem if index is None else problem | {"index": index})
        if problems:
            raise invalid(problems)


def _stamped(values: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    return values | {"created_at": now, "updated_at": now}


def _columns(table: TableDef) -> tuple[sa.Column[Any], ...]:
    return table.stored
