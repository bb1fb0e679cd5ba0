"""The message a linked write publishes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from conveyor.links.model import Link

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
