"""What goes through the outbox: an `Entry` on its way in (a linked write's message),
an `OutboxRow` as stored, and a `Due` message on its way out to a queue."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row

from conveyor.exceptions import NotFound
from conveyor.queues.base import HEADER_MESSAGE_ID, OutgoingMessage


class Status(StrEnum):
    #: Waiting for a relay (or for its next attempt after a failure).
    PENDING = "pending"
    #: Accepted by the queue's backend.
    SENT = "sent"
    #: Given up on; an operator can retry it.
    FAILED = "failed"


@dataclass(frozen=True)
class Entry:
    """A message of a linked write, on its way into the outbox."""

    queue_id: str
    table_name: str
    record_id: str | None
    event: str
    message: OutgoingMessage
    #: The backend's id of a message published before the commit (`sync` links).
    backend_id: str | None = None
    #: The embedded queue's row of the message, inserted beside the outbox row: the
    #: message is sent by the commit itself.
    queue_row: dict[str, Any] | None = None
    #: Not published sooner than this after the commit (replays are spaced out so).
    delay_ms: int = 0

    @property
    def sent(self) -> bool:
        return self.backend_id is not None or self.queue_row is not None

    def values(self, now_ms: int) -> dict[str, Any]:
        """The entry's outbox row, as inserted."""
        values: dict[str, Any] = {
            "queue_id": self.queue_id,
            "table_name": self.table_name,
            "record_id": self.record_id,
            "event": self.event,
            "message_id": self.message.id,
            "ordering_key": self.message.ordering_key,
            "payload": self.message.body.decode(),
            "status": Status.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now_ms + self.delay_ms,
            "created_at": now_ms,
        }
        if self.sent:
            values |= {"status": Status.SENT.value, "sent_at": now_ms}
        if self.backend_id is not None:
            values["backend_id"] = self.backend_id
        return values


@dataclass(frozen=True)
class Due:
    """A message for a relay to publish: its outbox row's id and queue, and the message."""

    row_id: int
    queue_id: str
    message: OutgoingMessage


@dataclass(frozen=True)
class OutboxRow:
    id: int
    queue_id: str
    table_name: str
    record_id: str | None
    event: str
    message_id: str
    ordering_key: str
    payload: str
    status: Status
    attempts: int
    next_attempt_at: int
    last_error: str | None
    backend_id: str | None
    created_at: int
    sent_at: int | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> OutboxRow:
        return cls(
            id=row.id,
            queue_id=row.queue_id,
            table_name=row.table_name,
            record_id=row.record_id,
            event=row.event,
            message_id=row.message_id,
            ordering_key=row.ordering_key,
            payload=row.payload,
            status=Status(row.status),
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            backend_id=row.backend_id,
            created_at=row.created_at,
            sent_at=row.sent_at,
        )

    def message(self) -> OutgoingMessage:
        """The message this row holds, as it is published (again)."""
        return OutgoingMessage(
            body=self.payload.encode(),
            id=self.message_id,
            headers={HEADER_MESSAGE_ID: self.message_id},
            ordering_key=self.ordering_key,
        )

    def due(self) -> Due:
        return Due(self.id, self.queue_id, self.message())


class OutboxRowNotFound(NotFound):
    """Outbox row not found."""

    code = "outbox_row_not_found"
