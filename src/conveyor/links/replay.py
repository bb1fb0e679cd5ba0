"""Re-emitting records: `event: "replay"` messages for the records matching a filter,
for backfills and consumer recovery.

The messages go through the outbox, spaced out by `next_attempt_at` so that the relay
sends them at no more than `rate_per_s`: the request itself only writes rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.db import Database, after_commit
from conveyor.links import messages
from conveyor.links.hook import outbox_row
from conveyor.links.model import Link
from conveyor.links.outbox import OutboxStore
from conveyor.links.relay import Relay
from conveyor.queues.base import HEADER_MESSAGE_ID, OutgoingMessage, new_message_id
from conveyor.storage import Storage

PAGE = 500
MAX_RECORDS = 100_000


async def replay(
    db: Database,
    storage: Storage,
    relay: Relay,
    link: Link,
    params: Sequence[tuple[str, str]],
    *,
    rate_per_s: float,
    limit: int,
) -> tuple[int, str | None]:
    """Enqueue replays of up to `limit` matching records; (count, cursor to continue)."""
    filters = [(k, v) for k, v in params if k not in ("limit", "cursor", "count", "offset", "page")]
    cursor = dict(params).get("cursor")
    spacing_ms = 1000 / rate_per_s
    enqueued = 0
    while enqueued < limit:
        page = [*filters, ("limit", str(min(PAGE, limit - enqueued)))]
        if cursor:
            page.append(("cursor", cursor))
        records, cursor = (await storage.records.query(link.table_name, page))[:2]
        rows = []
        for record in records:
            message_id = new_message_id()
            message = OutgoingMessage(
                body=messages.payload(link, "replay", record, None),
                id=message_id,
                headers={HEADER_MESSAGE_ID: message_id},
                ordering_key=messages.ordering_key(link.table_name, record.get("id")),
            )
            row = outbox_row(link, "replay", record.get("id"), message)
            row["next_attempt_at"] += int(enqueued * spacing_ms)
            rows.append(row)
            enqueued += 1
        async with db.write() as conn:
            await OutboxStore.add(conn, rows)
            after_commit(conn, relay.wake)
        if cursor is None:
            break
    return enqueued, cursor
