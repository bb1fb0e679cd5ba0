"""Re-emitting records: `event: "replay"` messages for the records matching a filter,
for backfills and consumer recovery.

The messages go through the outbox, spaced out by `next_attempt_at` so that the relay
sends them at no more than `rate_per_s`: the request itself only writes rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.links import messages
from conveyor.links.model import Link
from conveyor.links.outbox import OutboxStore
from conveyor.storage import Storage

PAGE = 500
MAX_RECORDS = 100_000


async def replay(
    outbox: OutboxStore,
    storage: Storage,
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
        entries = []
        for record in records:
            delay_ms = int(enqueued * spacing_ms)
            entries.append(messages.entry(link, "replay", record, None, delay_ms=delay_ms))
            enqueued += 1
        async with outbox.db.write() as conn:
            await outbox.enqueue(conn, entries)
        if cursor is None:
            break
    return enqueued, cursor
