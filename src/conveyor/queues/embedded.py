"""The embedded queue: a table in Conveyor's own database.

PostgreSQL claims rows with `FOR UPDATE SKIP LOCKED`, so competing workers never wait
on each other; SQLite claims inside `BEGIN IMMEDIATE`, which serialises claimers across
processes on one file. See `db/tables.py` for the meaning of the columns.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db import Database, after_commit, bulk
from conveyor.db.tables import messages
from conveyor.exceptions import BackendError, BadRequest
from conveyor.group_commit import GroupCommit
from conveyor.queues import base
from conveyor.queues.base import (
    CheckResult,
    DeadLetter,
    DeadLetterPage,
    Delivery,
    OutgoingMessage,
    PublishResult,
    QueueBackend,
    QueueStats,
)
from conveyor.queues.model import Queue

READY, DEAD = "ready", "dead"
_INSERT = bulk.Spec(
    messages,
    names=("queue_id", "message_id", "payload", "headers", "ordering_key", "published_at"),
    returning=("id",),
    constants=("state", "attempt", "visible_at"),
)
#: How often an idle receiver looks again when nothing wakes it sooner.
POLL_INTERVAL_S = 0.1
LEASE_EXPIRED_ERROR = "the lease expired on every attempt (did the worker crash?)"


class EmbeddedStore:
    """The SQL side of every embedded queue of one platform (they share a table)."""

    def __init__(self, db: Database, *, clock: Callable[[], int] = base.now_ms) -> None:
        self.db = db
        #: Epoch milliseconds; tests drive it by hand.
        self.clock = clock
        writers = 1 if db.dialect == "sqlite" else 4
        self._inserts: GroupCommit[dict[str, Any], int] = GroupCommit(self._insert, writers=writers)
        # Acks are the other per-message write: concurrent ones share a commit too.
        self._acks: GroupCommit[tuple[int, str], bool] = GroupCommit(self._ack, writers=writers)
        self._published: dict[str, asyncio.Event] = {}

    async def close(self) -> None:
        await self._inserts.close()
        await self._acks.close()

    def backend(self, queue: Queue) -> EmbeddedBackend:
        return EmbeddedBackend(queue, self)

    async def _insert(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        # Visible from the moment they are committed: now, as far as a claim can tell.
        ready = (READY, 0, self.clock())
        async with self.db.write() as conn:
            inserted = await bulk.insert(conn, _INSERT, rows, constants=ready)
        for queue_id in {row["queue_id"] for row in rows}:
            self.event(queue_id).set()
        stored = inserted.rows()
        assert None not in stored, "an insert without a guard stores every row"
        return [row[0] for row in stored if row is not None]

    async def insert(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        try:
            return await self._inserts.submit(rows)
        except SQLAlchemyError as exc:
            raise BackendError(f"the embedded queue could not store the message: {exc}") from exc

    async def stats_many(self, queue_ids: Sequence[str]) -> dict[str, QueueStats]:
        """The counts of many embedded queues in one query (overview pages)."""
        if not queue_ids:
            return {}
        query = (
            _counts(self.clock())
            .add_columns(messages.c.queue_id)
            .where(messages.c.queue_id.in_(queue_ids))
            .group_by(messages.c.queue_id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        found = {row.queue_id: _stats(row) for row in rows}
        return {queue_id: found.get(queue_id, QueueStats(0, 0, 0, 0)) for queue_id in queue_ids}

    async def _ack(self, receipts: Sequence[tuple[int, str]]) -> list[bool]:
        leased = tuple_(messages.c.id, messages.c.lease_id).in_(list(receipts))
        async with self.db.write() as conn:
            result = await conn.execute(delete(messages).where(leased).returning(messages.c.id))
            deleted = set(result.scalars())
        return [row_id in deleted for row_id, _ in receipts]

    async def ack(self, receipt: tuple[int, str]) -> bool:
        """Delete a leased message, in a transaction shared with concurrent acks."""
        (deleted,) = await self._acks.submit([receipt])
        return deleted

    def event(self, queue_id: str) -> asyncio.Event:
        """Set when this process commits a message to the queue: wakes its receivers."""
        return self._published.setdefault(queue_id, asyncio.Event())


class EmbeddedBackend(QueueBackend):
    def __init__(self, queue: Queue, store: EmbeddedStore) -> None:
        self.queue = queue
        self._store = store
        self._db = store.db
        self._draining = False
        self._statements: tuple[Any, Any] | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def row(self, message: OutgoingMessage) -> dict[str, Any]:
        """The message's row in the messages table, as inserted."""
        return {
            "queue_id": self.queue.id,
            "message_id": message.id,
            "payload": message.body.decode(),
            "headers": dict(message.headers) or None,
            "ordering_key": message.ordering_key,
            "state": READY,
            "attempt": 0,
            "published_at": message.published_at_ms,
            "visible_at": self._store.clock(),
        }

    async def publish(self, message: OutgoingMessage) -> PublishResult:
        (row_id,) = await self._store.insert([self.row(message)])
        return PublishResult(message.id, str(row_id))

    def wake_after_commit(self, conn: AsyncConnection) -> None:
        """Once `conn`'s transaction, which inserted messages of this queue, commits:
        wake this process's receivers."""
        after_commit(conn, self._store.event(self.queue.id).set)

    async def publish_batch(self, batch: Sequence[OutgoingMessage]) -> list[PublishResult]:
        ids = await self._store.insert([self.row(m) for m in batch])
        return [PublishResult(m.id, str(i)) for m, i in zip(batch, ids, strict=True)]

    async def receive(self, max_messages: int, *, wait_s: float = 0) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        event = self._store.event(self.queue.id)
        while True:
            event.clear()
            deliveries = await self._claim(max_messages)
            remaining = deadline - loop.time()
            if deliveries or remaining <= 0:
                return deliveries
            try:
                async with asyncio.timeout(min(POLL_INTERVAL_S, remaining)):
                    await event.wait()
            except TimeoutError:
                pass

    def _visible(self, now: int) -> Any:
        return and_(
            messages.c.queue_id == self.queue.id,
            messages.c.state == READY,
            messages.c.visible_at <= now,
        )

    async def _claim(self, limit: int) -> list[Delivery]:
        now = self._store.clock()
        # A cheap read first: idle polling must not take SQLite's write lock. Skipped
        # while the last claim came back full: a backlog is being drained.
        if not self._draining:
            async with self._db.read() as conn:
                probe = select(messages.c.id).where(self._visible(now)).limit(1)
                if (await conn.execute(probe)).first() is None:
                    return []
        bury, claim = self._claim_statements()
        until = now + int(self.queue.options.visibility_timeout_s * 1000)
        params = {
            "p_queue_id": self.queue.id,
            "p_now": now,
            "p_limit": limit,
            "p_lease": secrets.token_hex(8),
            "p_until": until,
            "p_max_attempts": self.queue.options.max_attempts,
        }
        async with self._db.write() as conn:
            # Of the messages about to be claimed, those whose every attempt ended in an
            # expired lease go to the dead letters first (looking only at the candidates
            # keeps each claim's cost independent of the backlog).
            await conn.execute(bury, params)
            rows = (await conn.execute(claim, params)).all()
        self._draining = len(rows) == limit
        return [self._delivery(row) for row in sorted(rows, key=lambda r: (r.published_at, r.id))]

    def _claim_statements(self) -> tuple[Any, Any]:
        """The claim's two statements, built once per queue (building them costs more
        than running them): bound by `p_queue_id`, `p_now`, `p_limit`, `p_lease`,
        `p_until` and `p_max_attempts` (an UPDATE reserves its columns' names)."""
        if self._statements is None:
            candidates = (
                select(messages.c.id)
                .where(
                    messages.c.queue_id == bindparam("p_queue_id"),
                    messages.c.state == READY,
                    messages.c.visible_at <= bindparam("p_now"),
                )
                .order_by(messages.c.visible_at, messages.c.id)
                .limit(bindparam("p_limit", type_=Integer))
            )
            if self._db.dialect == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            chosen = messages.c.id.in_(candidates.scalar_subquery())
            crash_looped = and_(
                chosen,
                messages.c.lease_id.is_not(None),
                messages.c.attempt >= bindparam("p_max_attempts"),
            )
            bury: Any
            if self.queue.options.dead_letter:
                bury = (
                    update(messages)
                    .where(crash_looped)
                    .values(
                        state=DEAD,
                        dead_at=bindparam("p_now"),
                        lease_id=None,
                        last_error=LEASE_EXPIRED_ERROR,
                    )
                )
            else:
                bury = delete(messages).where(crash_looped)
            claim = (
                update(messages)
                .where(chosen)
                .values(
                    attempt=messages.c.attempt + 1,
                    lease_id=bindparam("p_lease"),
                    visible_at=bindparam("p_until"),
                )
                .returning(messages)
            )
            self._statements = (bury, claim)
        return self._statements

    def _delivery(self, row: Row[Any]) -> Delivery:
        headers = dict(row.headers or {})
        headers[base.HEADER_MESSAGE_ID] = row.message_id
        headers[base.HEADER_ATTEMPT] = str(row.attempt)
        headers[base.HEADER_PUBLISHED_AT] = str(row.published_at)
        return Delivery(
            id=row.message_id,
            body=row.payload.encode(),
            headers=headers,
            attempt=row.attempt,
            published_at_ms=row.published_at,
            receipt=(row.id, row.lease_id),
            backend_id=str(row.id),
            ordering_key=row.ordering_key,
        )

    def _leased(self, delivery: Delivery) -> Any:
        row_id, lease = delivery.receipt
        return and_(messages.c.id == row_id, messages.c.lease_id == lease)

    async def _settle(self, statement: Any) -> bool:
        async with self._db.write() as conn:
            return bool((await conn.execute(statement)).rowcount)

    async def ack(self, delivery: Delivery) -> bool:
        row_id, lease = delivery.receipt
        return await self._store.ack((row_id, lease))

    async def retry(self, delivery: Delivery, *, delay_s: float, error: str | None) -> bool:
        visible_at = self._store.clock() + int(max(delay_s, 0) * 1000)
        return await self._settle(
            update(messages)
            .where(self._leased(delivery))
            .values(visible_at=visible_at, lease_id=None, last_error=error)
        )

    async def dead_letter(self, delivery: Delivery, *, reason: str) -> bool:
        if not self.queue.options.dead_letter:
            return await self.ack(delivery)
        return await self._settle(
            update(messages)
            .where(self._leased(delivery))
            .values(state=DEAD, dead_at=self._store.clock(), lease_id=None, last_error=reason)
        )

    async def extend_lease(self, delivery: Delivery, *, seconds: float) -> bool:
        until = self._store.clock() + int(seconds * 1000)
        return await self._settle(
            update(messages).where(self._leased(delivery)).values(visible_at=until)
        )

    async def release(self, delivery: Delivery) -> bool:
        return await self._settle(
            update(messages)
            .where(self._leased(delivery))
            .values(visible_at=self._store.clock(), lease_id=None, attempt=messages.c.attempt - 1)
        )

    async def stats(self) -> QueueStats:
        query = _counts(self._store.clock()).where(messages.c.queue_id == self.queue.id)
        async with self._db.read() as conn:
            return _stats((await conn.execute(query)).one())

    async def check(self) -> CheckResult:
        if await self._db.ping():
            return CheckResult(ok=True)
        return CheckResult(ok=False, error="Conveyor's database does not answer")

    async def dead_letters(self, *, limit: int, cursor: str | None = None) -> DeadLetterPage:
        query = (
            select(messages)
            .where(messages.c.queue_id == self.queue.id, messages.c.state == DEAD)
            .order_by(messages.c.id)
            .limit(limit + 1)
        )
        if cursor is not None:
            query = query.where(messages.c.id > _row_id(cursor))
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        items = [_dead_letter(row) for row in rows[:limit]]
        return DeadLetterPage(items, items[-1].id if len(rows) > limit else None)

    def _dead(self, ids: Sequence[str] | None) -> Any:
        where = and_(messages.c.queue_id == self.queue.id, messages.c.state == DEAD)
        if ids is not None:
            where = and_(where, messages.c.id.in_([_row_id(i) for i in ids]))
        return where

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        now = self._store.clock()
        statement = (
            update(messages)
            .where(self._dead(ids))
            .values(state=READY, attempt=0, visible_at=now, lease_id=None, dead_at=None)
        )
        async with self._db.write() as conn:
            moved = (await conn.execute(statement)).rowcount
        self._store.event(self.queue.id).set()
        return moved

    async def delete_dead_letters(self, ids: Sequence[str]) -> int:
        async with self._db.write() as conn:
            return (await conn.execute(delete(messages).where(self._dead(ids)))).rowcount


def _counts(now: int) -> Select[Any]:
    """Visible, leased, delayed and dead messages (add a WHERE on the queue)."""
    ready = messages.c.state == READY
    future = messages.c.visible_at > now

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    return select(
        count(and_(ready, ~future)).label("visible"),
        count(and_(ready, future, messages.c.lease_id.is_not(None))).label("in_flight"),
        count(and_(ready, future, messages.c.lease_id.is_(None))).label("delayed"),
        count(messages.c.state == DEAD).label("dead"),
    )


def _stats(row: Row[Any]) -> QueueStats:
    return QueueStats(int(row.visible), int(row.in_flight), int(row.dead), int(row.delayed))


def _row_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{value!r} is not a dead-letter id of this queue") from None


def _dead_letter(row: Row[Any]) -> DeadLetter:
    return DeadLetter(
        id=str(row.id),
        message_id=row.message_id,
        body=row.payload.encode(),
        headers=dict(row.headers or {}),
        attempts=row.attempt,
        last_error=row.last_error,
        published_at_ms=row.published_at,
        dead_at_ms=row.dead_at,
    )
