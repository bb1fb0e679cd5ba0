"""The message a linked write publishes, built here alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from conveyor.links.model import Link
from conveyor.links.rows import Entry
from conveyor.queues.base import HEADER_MESSAGE_ID, OutgoingMessage, new_message_id

Record = dict[str, Any]
#: Fields that change on every write and so say nothing about what changed.
_NOISE = frozenset({"updated_at"})


def ordering_key(table_name: str, record_id: object) -> str:
    return f"{table_name}:{record_id}"


def changed_fields(record: Record, previous: Record) -> list[str]:
    names = (set(record) | set(previous)) - _NOISE
    return sorted(n for n in names if record.get(n) != previous.get(n))


def payload(
    link: Link,
    event: str,
    record: Record | None,
    previous: Record | None,
    occurred_at: datetime | None = None,
) -> bytes:
    """`{"handler", "event", "table", "record", "previous"?, "changed"?, "occurred_at"}`.

    A delete's `record` is the record as it was when deleted (also in `previous`).
    """
    message: dict[str, Any] = {
        "handler": link.handler,
        "event": event,
        "table": link.table_name,
        "record": record if record is not None else previous,
    }
    if event in ("update", "delete") and previous is not None:
        message["previous"] = previous
    if event == "update" and record is not None and previous is not None:
        message["changed"] = changed_fields(record, previous)
    message["occurred_at"] = (occurred_at or datetime.now(UTC)).isoformat()
    return orjson.dumps(message)


def entry(
    link: Link, event: str, record: Record | None, previous: Record | None, *, delay_ms: int = 0
) -> Entry:
    """The outbox entry of `link`'s message for a write, to be published `delay_ms`
    after the commit at the earliest."""
    current = record if record is not None else previous or {}
    record_id = current.get("id")
    message_id = new_message_id()
    message = OutgoingMessage(
        body=payload(link, event, record, previous),
        id=message_id,
        headers={HEADER_MESSAGE_ID: message_id},
        ordering_key=ordering_key(link.table_name, record_id),
    )
    rid = None if record_id is None else str(record_id)
    return Entry(link.queue_id, link.table_name, rid, event, message, delay_ms=delay_ms)
