"""The write hook: runs inside a record's write transaction and emits its messages.

- Embedded queue: the message row is inserted in the same transaction (nothing can be
  lost or phantom; no relay needed). An outbox row, already `sent`, records it (on
  PostgreSQL both rows go in one statement; on SQLite both go with the COMMIT).
- `outbox` mode: an outbox row is inserted; right after the commit it is handed to this
  process's relay (leased to it in the write, see `conveyor.links.relay`), or the relay
  is woken to claim it.
- `sync` mode: the message is published before the transaction commits; if the broker
  does not confirm within `sync_timeout_s` the write fails (503) and rolls back. The
  price: should the commit itself fail after the broker confirmed, the message exists
  for a write that does not (rare, but the outbox mode has no such window).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.db import after_commit
from conveyor.exceptions import BackendError, ConveyorError, ValidationError
from conveyor.links import messages
from conveyor.links.model import Link, LinkMode
from conveyor.links.outbox import OutboxRow, OutboxStore, Status
from conveyor.links.registry import LinkRegistry, VersionedTable
from conveyor.links.relay import Relay
from conveyor.queues.base import HEADER_MESSAGE_ID, OutgoingMessage, new_message_id, now_ms
from conveyor.queues.embedded import EmbeddedStore
from conveyor.queues.model import Queue, QueueType
from conveyor.queues.pool import BackendPool
from conveyor.queues.registry import QueueRegistry

Record = dict[str, Any]


class LinkHook:
    def __init__(
        self,
        *,
        links: LinkRegistry,
        queues: QueueRegistry,
        backends: BackendPool,
        embedded: EmbeddedStore,
        relay: Relay,
        sync_timeout_s: float = 5.0,
    ) -> None:
        self._links = links
        self._queues = queues
        self._backends = backends
        self._embedded = embedded
        self._relay = relay
        self._sync_timeout_s = sync_timeout_s

    async def __call__(
        self,
        conn: AsyncConnection,
        table: VersionedTable,
        event: str,
        record: Record | None,
        previous: Record | None,
    ) -> None:
        links = [link for link in await self._links.for_write(conn, table) if event in link.events]
        settled: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []
        for link in links:
            row, done = await self._emit(conn, link, event, record, previous)
            if row is not None:
                (settled if done else waiting).append(row)
        await OutboxStore.add(conn, settled)
        if waiting:
            await self._leave_for_relay(conn, waiting)

    async def shares_transaction(self, conn: AsyncConnection, table: VersionedTable) -> bool:
        """Creates in `table` may share a transaction unless a link publishes before the
        commit (`sync`): a shared transaction that fails would leave its messages out."""
        links = await self._links.for_write(conn, table)
        return not any(link.mode is LinkMode.SYNC and "create" in link.events for link in links)

    async def _leave_for_relay(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Outbox mode: leased to this process's relay and handed over after the commit
        when it can take them; otherwise left for a claim, and the relay woken."""
        claims = []
        unleased = False
        for row in rows:
            lease = self._relay.lease_for_handoff(row["queue_id"])
            if lease is None:
                await OutboxStore.add(conn, [row])
                unleased = True
                continue
            claims.append(
                await OutboxStore.add_claimed(
                    conn, row, relay_id=self._relay.id, claimed_until=lease
                )
            )
        if claims:
            after_commit(conn, partial(self._hand_off, claims))
        if unleased:
            after_commit(conn, self._relay.wake)

    def _hand_off(self, claims: list[Callable[[], OutboxRow | None]]) -> None:
        leased = [row for row in (claim() for claim in claims) if row is not None]
        if leased:
            self._relay.hand_off(leased)
        if len(leased) < len(claims):
            self._relay.wake()

    async def _emit(
        self,
        conn: AsyncConnection,
        link: Link,
        event: str,
        record: Record | None,
        previous: Record | None,
    ) -> tuple[dict[str, Any] | None, bool]:
        """The link's outbox row (None when inserted already), and whether its message
        is published already."""
        queue = await self._queues.get(link.queue_id, conn=conn)
        current = record if record is not None else previous or {}
        message_id = new_message_id()
        message = OutgoingMessage(
            body=messages.payload(link, event, record, previous),
            id=message_id,
            headers={HEADER_MESSAGE_ID: message_id},
            ordering_key=messages.ordering_key(link.table_name, current.get("id")),
        )
        limit = queue.options.max_message_bytes
        if len(message.body) > limit:
            raise ValidationError(
                f"the message of this write to queue {queue.name!r} would be "
                f"{len(message.body)} bytes; the queue accepts {limit} (its max_message_bytes)",
                details=[{"field": None, "rule": "max_message_bytes", "message": "too large"}],
            )
        row = outbox_row(link, event, current.get("id"), message)
        if queue.type is QueueType.EMBEDDED:
            embedded = self._embedded.backend(queue)
            await OutboxStore.add_with_message(conn, embedded.row(message), sent(row))
            embedded.wake_after_commit(conn)
            return None, True
        if link.mode is LinkMode.SYNC:
            return sent(row, await self._publish_now(queue, message)), True
        return row, False

    async def _publish_now(self, queue: Queue, message: OutgoingMessage) -> str:
        try:
            async with asyncio.timeout(self._sync_timeout_s):
                backend = await self._backends.get(queue)
                return (await backend.publish(message)).backend_id
        except (ConveyorError, TimeoutError) as exc:
            if isinstance(exc, ConveyorError):
                reason = exc.message
            else:
                reason = f"no confirm within {self._sync_timeout_s:g} s"
            raise BackendError(
                f"queue {queue.name!r} did not accept the message ({reason}); "
                "the write was rolled back"
            ) from exc


def sent(row: dict[str, Any], backend_id: str | None = None) -> dict[str, Any]:
    """`row` marked sent now (its backend id, when known here)."""
    marked = row | {"status": Status.SENT.value, "sent_at": now_ms()}
    return marked if backend_id is None else marked | {"backend_id": backend_id}


def outbox_row(
    link: Link, event: str, record_id: object, message: OutgoingMessage
) -> dict[str, Any]:
    now = now_ms()
    return {
        "queue_id": link.queue_id,
        "table_name": link.table_name,
        "record_id": None if record_id is None else str(record_id),
        "event": event,
        "message_id": message.id,
        "ordering_key": message.ordering_key,
        "payload": message.body.decode(),
        "status": Status.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
