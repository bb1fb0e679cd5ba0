"""Record creates that run at the same time share one transaction (group commit).

A durable commit costs an fsync on SQLite and a round trip on PostgreSQL; a create that
arrives while another batch commits waits and goes with the next one. Each create is
checked before it joins (types, options, rules, against the table's cached definition);
the batch stores its rows with one statement per table (`conveyor.db.bulk`), guarded by
the definition's version, runs the write hooks of each new record in the same
transaction, and commits once.

A create the batch could not store comes back as None and its caller takes the long way
alone (`Records.create`), which gives it its exact answer: a definition that changed, a
unique value taken, a reference to a missing record. On SQLite such a row fails alone
and the others commit; on PostgreSQL a broken constraint fails the statement, so the
whole batch goes the long way (rare: a batch is what arrived within one commit). Tables
whose hooks cannot share a transaction (a hook with effects outside it) never batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db import Database, bulk, flush
from conveyor.db.tables import storage_tables
from conveyor.db.types import utcnow
from conveyor.group_commit import GroupCommit
from conveyor.storage.model import TableDef
from conveyor.storage.validate import Checked

Record = dict[str, Any]
#: The name of the tasks that write the batches.
WRITER_NAME = "record creates"
#: Called for each new record, inside the batch's transaction.
OnCreate = Callable[[AsyncConnection, TableDef, Record], Awaitable[None]]


@runtime_checkable
class SharedHook(Protocol):
    """A write hook that says whether its work for a table's creates may share a
    transaction with other creates: one's failure then rolls back them all (each is
    tried again alone), so that work must have no effect outside the transaction."""

    async def shares_transaction(self, conn: AsyncConnection, table: TableDef) -> bool: ...


@dataclass(frozen=True)
class _Create:
    table: TableDef
    checked: Checked


class _LongWay(Exception):
    """Nothing of the batch is kept: each of its creates goes the long way."""


class Creates:
    """Batches `create(table, checked)` calls; `on_create` runs the hooks of each."""

    def __init__(self, db: Database, hooks: Sequence[object], on_create: OnCreate) -> None:
        self._db = db
        self._hooks = hooks
        self._on_create = on_create
        writers = 1 if db.dialect == "sqlite" else 4
        self._group: GroupCommit[_Create, Record | None] = GroupCommit(
            self._commit, writers=writers, name=WRITER_NAME
        )
        self._specs: dict[tuple[str, int, tuple[str, ...]], bulk.Spec] = {}

    async def create(self, table: TableDef, checked: Checked) -> Record | None:
        """The stored record, or None when it must be written alone (see the module)."""
        (record,) = await self._group.submit([_Create(table, checked)])
        return record

    async def close(self) -> None:
        await self._group.close()

    async def _commit(self, creates: Sequence[_Create]) -> list[Record | None]:
        try:
            async with self._db.write() as conn:
                try:
                    return await self._write(conn, creates)
                except Exception as error:
                    # A broken constraint (PostgreSQL), a definition gone from under the
                    # cached one (a column dropped by another process), a hook refusing
                    # one record: alone, each gets its own answer.
                    raise _LongWay from error
        except _LongWay:
            return [None] * len(creates)

    async def _write(
        self, conn: AsyncConnection, creates: Sequence[_Create]
    ) -> list[Record | None]:
        """Insert the creates, grouped by table and fields, then run their hooks."""
        groups: dict[bulk.Spec, list[int]] = {}
        shared: dict[str, bool] = {}
        for index, create in enumerate(creates):
            table = create.table
            if table.id not in shared:
                shared[table.id] = await self._shares(conn, table)
            if shared[table.id]:
                groups.setdefault(self._spec(table, create.checked), []).append(index)
        now = utcnow()
        inserts = []
        for spec, indexes in groups.items():
            table = creates[indexes[0]].table
            inserted = await bulk.insert(
                conn,
                spec,
                [creates[i].checked.values for i in indexes],
                constants=(now, now),
                guard=(table.id, table.version),
                may_conflict=True,
            )
            inserts.append((spec, indexes, inserted))
        await flush(conn)  # SQLite: the rows are needed before the commit, for the hooks
        records: list[Record | None] = [None] * len(creates)
        for spec, indexes, inserted in inserts:
            for index, row in zip(indexes, inserted.rows(), strict=True):
                if row is not None:
                    table = creates[index].table
                    record = table.record(dict(zip(spec.returning, row, strict=True)))
                    await self._on_create(conn, table, record)
                    records[index] = record
        return records

    async def _shares(self, conn: AsyncConnection, table: TableDef) -> bool:
        for hook in self._hooks:
            if not isinstance(hook, SharedHook) or not await hook.shares_transaction(conn, table):
                return False
        return True

    def _spec(self, table: TableDef, checked: Checked) -> bulk.Spec:
        names = tuple(checked.values)
        key = (table.id, table.version, names)
        spec = self._specs.get(key)
        if spec is None:
            if len(self._specs) >= bulk.MAX_SPECS:
                self._specs.clear()
            spec = self._specs[key] = bulk.Spec(
                table.sql,
                names,
                tuple(c.name for c in table.stored),
                constants=("created_at", "updated_at"),
                guard_table=storage_tables,
                guard_names=("id", "version"),
            )
        return spec
