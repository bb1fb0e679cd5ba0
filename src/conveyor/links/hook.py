"""The write hook: runs inside a record's write transaction and emits its messages.

Each linked queue's message goes into the outbox (`OutboxStore.enqueue`), in the write's
transaction:
- Embedded queue: the message row is inserted beside its outbox row, already `sent`
  (nothing can be lost or phantom; no relay needed; on PostgreSQL both rows go in one
  statement, on SQLite both go with the COMMIT).
- `outbox` mode: the outbox row is pending; right after the commit the message goes to
  this process's relay, or waits for a claim (see `conveyor.links.relay`).
- `sync` mode: the message is published before the transaction commits; if the broker
  does not confirm within `sync_timeout_s` the write fails (503) and rolls back. The
  price: should the commit itself fail after the broker confirmed, the message exists
  for a write that does not (rare, but the outbox mode has no such window).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.exceptions import BackendError, ConveyorError, ValidationError
from conveyor.links import messages
from conveyor.links.model import Link, LinkMode
from conveyor.links.outbox import OutboxStore
from conveyor.links.registry import LinkRegistry, VersionedTable
from conveyor.links.rows import Entry
from conveyor.queues.base import OutgoingMessage
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
        outbox: OutboxStore,
        sync_timeout_s: float = 5.0,
    ) -> None:
        self._links = links
        self._queues = queues
        self._backends = backends
        self._embedded = embedded
        self._outbox = outbox
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
        if links:
            entries = [await self._entry(conn, link, event, record, previous) for link in links]
            await self._outbox.enqueue(conn, entries)

    async def shares_transaction(self, conn: AsyncConnection, table: VersionedTable) -> bool:
        """Creates in `table` may share a transaction unless a link publishes before the
        commit (`sync`): a shared transaction that fails would leave its messages out."""
        links = await self._links.for_write(conn, table)
        return not any(link.mode is LinkMode.SYNC and "create" in link.events for link in links)

    async def _entry(
        self,
        conn: AsyncConnection,
        link: Link,
        event: str,
        record: Record | None,
        previous: Record | None,
    ) -> Entry:
        """The link's outbox entry for this write; published already when it must be."""
        queue = await self._queues.get(link.queue_id, conn=conn)
        entry = messages.entry(link, event, record, previous)
        size, limit = len(entry.message.body), queue.options.max_message_bytes
        if size > limit:
            raise ValidationError(
                f"the message of this write to queue {queue.name!r} would be "
                f"{size} bytes; the queue accepts {limit} (its max_message_bytes)",
                details=[{"field": None, "rule": "max_message_bytes", "message": "too large"}],
            )
        if queue.type is QueueType.EMBEDDED:
            embedded = self._embedded.backend(queue)
            embedded.wake_after_commit(conn)
            return replace(entry, queue_row=embedded.row(entry.message))
        if link.mode is LinkMode.SYNC:
            return replace(entry, backend_id=await self._publish_now(queue, entry.message))
        return entry

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
