"""What a link is: which events of a table go to which queue, under which handler."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row

from conveyor.exceptions import ValidationError

EVENTS = ("create", "update", "delete")
_HANDLER_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")


class LinkMode(StrEnum):
    #: The write commits with an outbox row; a relay publishes it. The write succeeds
    #: while the broker is down and its message follows when the broker is back.
    OUTBOX = "outbox"
    #: The write waits for the broker's confirm and fails (503, rolled back) without it.
    SYNC = "sync"


@dataclass(frozen=True)
class Link:
    id: str
    table_name: str
    queue_id: str
    events: frozenset[str]
    handler: str
    mode: LinkMode
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> Link:
        return cls(
            id=row.id,
            table_name=row.table_name,
            queue_id=row.queue_id,
            events=frozenset(row.events),
            handler=row.handler,
            mode=LinkMode(row.mode),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class LinkSpec:
    events: tuple[str, ...]
    handler: str
    mode: LinkMode

    @classmethod
    def parse(cls, table_name: str, body: Any) -> LinkSpec:
        """A link body, or one ValidationError listing every problem."""
        if not isinstance(body, dict):
            raise ValidationError(
                "a link is a JSON object",
                details=[{"field": "body", "message": "must be an object"}],
            )
        problems: list[tuple[str, str]] = []
        unknown = sorted(set(body) - {"events", "handler", "mode"})
        problems += [(f, "unknown field") for f in unknown]
        events = body.get("events", ["create", "update"])
        if not isinstance(events, list) or not events or not all(e in EVENTS for e in events):
            problems.append(("events", f"a non-empty list of {', '.join(EVENTS)}"))
            events = []
        handler = body.get("handler", f"{table_name}_changed")
        if not isinstance(handler, str) or not _HANDLER_RE.match(handler):
            problems.append(("handler", "1-255 letters, digits or _ . : -"))
        mode = body.get("mode", LinkMode.OUTBOX.value)
        if mode not in {m.value for m in LinkMode}:
            problems.append(("mode", "outbox or sync"))
        if problems:
            details = [{"field": f, "message": m} for f, m in problems]
            raise ValidationError("; ".join(f"{f}: {m}" for f, m in problems), details=details)
        ordered = tuple(e for e in EVENTS if e in events)
        return cls(ordered, handler, LinkMode(mode))
