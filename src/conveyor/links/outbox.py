"""The outbox table: rows written in a record's transaction, claimed and settled by relays.

Order: rows with one ordering key (`<table>:<record id>`) are published in id order. A
relay only ever claims the oldest pending row of each key, so a later change of a record
cannot overtake an earlier one, even when that earlier one is failing, is claimed by
another relay, or committed after rows of other records with higher ids (FI-07).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

from sqlalchemy import (
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from conveyor.db import Database, after_commit, pipelined
from conveyor.db.sqlite_driver import Pipelined
from conveyor.db.tables import messages, outbox
from conveyor.exceptions import BadRequest
from conveyor.links.rows import Due, Entry, OutboxRow, OutboxRowNotFound, Status
from conveyor.queues.base import now_ms

# One object each, so that the compiled forms are reused (see `conveyor.db.pipelined`).
_INSERT = insert(outbox)
_INSERT_MESSAGE = insert(messages)


#: Sent rows are counted up to this many (see `OutboxStore.counts`).
SENT_COUNT_CAP = 10_000


_MARK_SENT = (
    update(outbox)
    .where(outbox.c.id == bindparam("row_id"), outbox.c.claimed_by == bindparam("relay"))
    .values(
        status=Status.SENT.value,
        sent_at=bindparam("sent_ms"),
        backend_id=bindparam("backend"),
        claimed_until=None,
        last_error=None,
    )
)


class Relaying(Protocol):
    """This process's relay, as the writes into the outbox see it."""

    id: str

    def lease_for_handoff(self, queue_id: str) -> int | None: ...
    def hand_off(self, due: list[Due]) -> None: ...
    def wake(self) -> None: ...


class OutboxStore:
    def __init__(self, db: Database, *, clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.clock = clock
        #: This process's relay (`relay_with`): rows written here go straight to it.
        self._relay: Relaying | None = None

    def relay_with(self, relay: Relaying) -> None:
        """Hand the rows this process writes to `relay` after their commit."""
        self._relay = relay

    async def enqueue(self, conn: AsyncConnection, entries: Sequence[Entry]) -> None:
        """The one way into the outbox: the entries' rows, in the caller's transaction
        (pipelined: on SQLite they go to the database with its COMMIT). Once it commits,
        the messages this process's relay could take are handed to it as they are (their
        rows leased to it in the write, which saves it a claim); the relay is woken for
        the others, which wait for a claim."""
        now = self.clock()
        sent: list[dict[str, Any]] = []
        pending: list[Entry] = []
        for entry in entries:
            if entry.queue_row is not None:
                await _add_with_message(conn, entry.queue_row, entry.values(now))
            elif entry.sent:
                sent.append(entry.values(now))
            else:
                pending.append(entry)
        await self.add(conn, sent)
        if pending:
            await self._leave_for_relay(conn, pending, now)

    async def _leave_for_relay(self, conn: AsyncConnection, entries: list[Entry], now: int) -> None:
        relay = self._relay
        leased: list[tuple[Entry, Pipelined]] = []
        for entry in entries:
            values = entry.values(now)
            lease = None
            if relay is not None and not entry.delay_ms:
                lease = relay.lease_for_handoff(entry.queue_id)
            if relay is None or lease is None:
                await self.add(conn, [values])
                continue
            params = {**values, "lease_relay": relay.id, "lease_until": lease}
            leased.append((entry, await pipelined(conn, _insert_leased(tuple(values)), params)))
        if relay is not None:
            after_commit(conn, partial(_hand_over, relay, leased, len(entries)))

    @staticmethod
    async def add(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows as they are in the caller's transaction, pipelined (on SQLite
        they go to the database with its COMMIT): `enqueue`'s last step, and the way a
        test plants rows in a given state."""
        if rows:
            await pipelined(conn, _INSERT, list(rows))

    async def claim(self, relay_id: str, *, limit: int, lease_ms: int) -> list[OutboxRow]:
        """The oldest pending row of up to `limit` ordering keys, leased to this relay."""
        now = self.clock()
        earlier = aliased(outbox)
        blocked = exists().where(
            earlier.c.ordering_key == outbox.c.ordering_key,
            earlier.c.status == Status.PENDING.value,
            earlier.c.id < outbox.c.id,
        )
        candidates = (
            select(outbox.c.id)
            .where(
                outbox.c.status == Status.PENDING.value,
                outbox.c.next_attempt_at <= now,
                or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
                ~blocked,
            )
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self.db.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        claim = (
            update(outbox)
            .where(outbox.c.id.in_(candidates.scalar_subquery()))
            .values(claimed_until=now + lease_ms, claimed_by=relay_id)
            .returning(outbox)
        )
        async with self.db.write() as conn:
            rows = (await conn.execute(claim)).all()
        return sorted((OutboxRow.from_row(r) for r in rows), key=lambda r: r.id)

    async def mark_sent(self, relay_id: str, sent: Sequence[tuple[int, str]]) -> None:
        """Rows accepted by their backend, with the backend's message ids (pipelined: on
        SQLite the updates ride with the COMMIT, one trip under the write lock)."""
        if not sent:
            return
        now = self.clock()
        params = [{"row_id": i, "backend": b, "relay": relay_id, "sent_ms": now} for i, b in sent]
        async with self.db.write() as conn:
            await pipelined(conn, _MARK_SENT, params)

    async def release(self, relay_id: str, row_ids: Sequence[int]) -> None:
        """Give back leased rows this relay will not publish (it is stopping)."""
        if not row_ids:
            return
        async with self.db.write() as conn:
            await conn.execute(
                update(outbox)
                .where(
                    outbox.c.id.in_(row_ids),
                    outbox.c.claimed_by == relay_id,
                    outbox.c.status == Status.PENDING.value,
                )
                .values(claimed_until=None)
            )

    async def mark_attempt_failed(
        self,
        relay_id: str,
        row_ids: Sequence[int],
        *,
        error: str,
        retry_in_ms: Callable[[int], int],
    ) -> None:
        """Schedule another attempt; `retry_in_ms(attempts)` gives the backoff."""
        async with self.db.write() as conn:
            rows = (
                await conn.execute(
                    select(outbox.c.id, outbox.c.attempts).where(outbox.c.id.in_(row_ids))
                )
            ).all()
            now = self.clock()
            for row in rows:
                attempts = row.attempts + 1
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id, outbox.c.claimed_by == relay_id)
                    .values(
                        attempts=attempts,
                        next_attempt_at=now + retry_in_ms(attempts),
                        claimed_until=None,
                        last_error=error[:2000],
                    )
                )

    async def mark_failed(self, relay_id: str, row_ids: Sequence[int], *, error: str) -> None:
        """Give up on rows that can never be delivered (their queue is gone, say)."""
        async with self.db.write() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(row_ids), outbox.c.claimed_by == relay_id)
                .values(
                    status=Status.FAILED.value,
                    attempts=outbox.c.attempts + 1,
                    claimed_until=None,
                    last_error=error[:2000],
                )
            )

    async def retry(self, row_id: int) -> OutboxRow:
        """Send a failed (or waiting) row again as soon as possible: this process's relay
        looks for it once it is pending again. A row a relay holds right now (its lease
        running: it is being published) keeps its lease, or a second relay could claim
        it and send it twice."""
        now = self.clock()
        running = and_(outbox.c.claimed_until.is_not(None), outbox.c.claimed_until >= now)
        async with self.db.write() as conn:
            result = await conn.execute(
                update(outbox)
                .where(outbox.c.id == row_id, outbox.c.status != Status.SENT.value)
                .values(
                    status=Status.PENDING.value,
                    next_attempt_at=now,
                    claimed_until=case((running, outbox.c.claimed_until), else_=None),
                )
            )
            if not result.rowcount:
                exists_ = (
                    await conn.execute(select(outbox.c.status).where(outbox.c.id == row_id))
                ).first()
                if exists_ is None:
                    raise OutboxRowNotFound(f"no outbox row {row_id}")
                raise BadRequest(f"outbox row {row_id} was sent already")
            if self._relay is not None:
                after_commit(conn, self._relay.wake)
        return await self.get(row_id)

    async def get(self, row_id: int) -> OutboxRow:
        async with self.db.read() as conn:
            row = (await conn.execute(select(outbox).where(outbox.c.id == row_id))).first()
        if row is None:
            raise OutboxRowNotFound(f"no outbox row {row_id}")
        return OutboxRow.from_row(row)

    async def page(
        self,
        *,
        status: Status | None = None,
        table_name: str | None = None,
        record_id: str | None = None,
        limit: int = 50,
        after_id: int | None = None,
    ) -> list[OutboxRow]:
        """Rows, newest first (`after_id`: the last id of the previous page)."""
        query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(outbox.c.status == status.value)
        if table_name is not None:
            query = query.where(outbox.c.table_name == table_name)
        if record_id is not None:
            query = query.where(outbox.c.record_id == record_id)
        if after_id is not None:
            query = query.where(outbox.c.id < after_id)
        async with self.db.read() as conn:
            return [OutboxRow.from_row(row) for row in await conn.execute(query)]

    async def counts(self) -> dict[str, int]:
        """Rows per status: pending and failed exactly (few, through the status index);
        sent up to `SENT_COUNT_CAP` (they pile up until pruned: counting them all would
        read them all on every view)."""
        async with self.db.read() as conn:
            counts = {}
            for status in Status:
                rows = select(outbox.c.id).where(outbox.c.status == status.value)
                if status is Status.SENT:
                    rows = rows.limit(SENT_COUNT_CAP)
                query = select(func.count()).select_from(rows.subquery())
                counts[status.value] = int((await conn.execute(query)).scalar_one())
        return counts

    async def prune_sent(self, older_than_ms: int) -> int:
        cutoff = self.clock() - older_than_ms
        where = and_(outbox.c.status == Status.SENT.value, outbox.c.sent_at < cutoff)
        async with self.db.write() as conn:
            return (await conn.execute(delete(outbox).where(where))).rowcount


@functools.cache
def _insert_leased(columns: tuple[str, ...]) -> Any:
    """INSERT ... SELECT <values>, CASE WHEN EXISTS (an earlier pending row of the key)
    THEN NULL ELSE :lease_relay END, ... RETURNING id, claimed_by; built once per set of
    columns (building it costs more than running it)."""
    earlier = aliased(outbox)
    blocked = exists().where(
        earlier.c.ordering_key == bindparam("ordering_key"),
        earlier.c.status == Status.PENDING.value,
    )
    source = select(
        *(bindparam(name, type_=outbox.c[name].type) for name in columns),
        case((blocked, null()), else_=bindparam("lease_relay", type_=outbox.c.claimed_by.type)),
        case((blocked, null()), else_=bindparam("lease_until", type_=outbox.c.claimed_until.type)),
    )
    return (
        insert(outbox)
        .from_select([*columns, "claimed_by", "claimed_until"], source)
        .returning(outbox.c.id, outbox.c.claimed_by)
    )


@functools.cache
def _insert_after_message(columns: tuple[str, ...]) -> Any:
    """SQLite: INSERT INTO <outbox> (..., backend_id) VALUES (..., last_insert_rowid()),
    run right after the message row's INSERT on the same connection."""
    values = {name: bindparam(name, type_=outbox.c[name].type) for name in columns}
    backend_id = cast(func.last_insert_rowid(), outbox.c.backend_id.type)
    return insert(outbox).values({**values, "backend_id": backend_id})


@functools.cache
def _insert_with_message(message_columns: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """WITH m AS (INSERT INTO <messages> ... RETURNING id) INSERT INTO <outbox> (...,
    backend_id) SELECT <values>, m.id FROM m; built once per pair of column sets."""
    values = {name: bindparam(f"m_{name}", type_=messages.c[name].type) for name in message_columns}
    inserted = insert(messages).values(values).returning(messages.c.id).cte("m")
    source = select(
        *(bindparam(f"o_{name}", type_=outbox.c[name].type) for name in columns),
        cast(inserted.c.id, outbox.c.backend_id.type),
    ).select_from(inserted)
    return insert(outbox).from_select([*columns, "backend_id"], source)


def _hand_over(relay: Relaying, leased: list[tuple[Entry, Pipelined]], written: int) -> None:
    """After the commit: the messages whose rows were leased to `relay` go to it; for
    the others (an earlier row of their record was pending) it is woken."""
    due = [
        Due(inserted.rows[0][0], entry.queue_id, entry.message)
        for entry, inserted in leased
        if inserted.rows and inserted.rows[0][1] == relay.id
    ]
    if due:
        relay.hand_off(due)
    if len(due) < written:
        relay.wake()


async def _add_with_message(
    conn: AsyncConnection, message: dict[str, Any], row: dict[str, Any]
) -> None:
    """Insert an embedded queue's message row and its `sent` outbox row, whose backend
    id is the message row's id, in the caller's transaction. PostgreSQL: one statement,
    a data-modifying CTE (one round trip instead of two). SQLite: two pipelined
    statements, the second reading the id with `last_insert_rowid()`; they go to the
    database with the COMMIT."""
    if conn.dialect.name == "postgresql":
        statement = _insert_with_message(tuple(message), tuple(row))
        params = {f"m_{k}": v for k, v in message.items()} | {f"o_{k}": v for k, v in row.items()}
        await pipelined(conn, statement, params)
        return
    await pipelined(conn, _INSERT_MESSAGE, message)
    await pipelined(conn, _insert_after_message(tuple(row)), row)
