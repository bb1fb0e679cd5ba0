"""The one interface every queue backend implements, and the values it trades in.

A backend is bound to one registered queue. Its contract, checked for every
implementation by `tests/contract`:

- `publish` returns only once the broker has durably accepted the message (a confirm,
  a committed row); otherwise it raises a `BackendError`.
- `receive` hands out each visible message to one consumer at a time, under a lease of
  the queue's visibility timeout; a lease that expires makes the message visible again.
- The message id never changes: not on retry, not on redelivery, not on redrive.
- `attempt` counts deliveries, starting at 1.
- Settling (`ack`, `retry`, `dead_letter`, `release`) a delivery whose lease was lost is
  a no-op that returns False: somebody else owns the message now.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from conveyor.queues.headers import from_epoch_ms
from conveyor.queues.model import Queue

#: Header names, as seen by handlers and by other consumers of the broker.
HEADER_MESSAGE_ID = "conveyor-message-id"
HEADER_ATTEMPT = "conveyor-attempt"
HEADER_PUBLISHED_AT = "conveyor-published-at"


def new_message_id() -> str:
    """A random (version 4) UUID, as text: what `str(uuid.uuid4())` gives, made without
    its intermediate objects (it is made for every message published)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


#: The variant bits (10xx) set on a UUID's 17th hex digit.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message on its way in: the JSON body as bytes, already validated."""

    body: bytes
    id: str = field(default_factory=new_message_id)
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Messages with the same key keep their order where the backend can (Kafka, SQS FIFO).
    ordering_key: str | None = None
    published_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class PublishResult:
    message_id: str
    #: The backend's own id: row id, SQS MessageId, Kafka `partition:offset`, …
    backend_id: str


@dataclass(frozen=True)
class Delivery:
    """One received message plus what the backend needs to settle it."""

    id: str
    body: bytes
    headers: Mapping[str, str]
    attempt: int
    published_at_ms: int
    receipt: Any
    backend_id: str
    ordering_key: str | None = None

    @property
    def published_at(self) -> datetime:
        return from_epoch_ms(self.published_at_ms)


@dataclass(frozen=True)
class QueueStats:
    """Counts; None where a backend cannot tell."""

    ready: int | None
    in_flight: int | None
    dead: int | None
    delayed: int | None = None


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    id: str
    message_id: str
    body: bytes
    headers: Mapping[str, str]
    attempts: int
    last_error: str | None
    published_at_ms: int
    dead_at_ms: int | None


@dataclass(frozen=True)
class DeadLetterPage:
    items: list[DeadLetter]
    next_cursor: str | None


class QueueBackend(Protocol):
    """A connection to one registered queue."""

    queue: Queue

    async def open(self) -> None: ...

    async def close(self) -> None:
        """Release connections; safe to call twice."""

    async def publish(self, message: OutgoingMessage) -> PublishResult: ...

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        """All or nothing where the backend allows; results in the order given."""

    async def receive(self, max_messages: int, *, wait_s: float = 0) -> list[Delivery]:
        """Up to `max_messages` visible messages, waiting up to `wait_s` for the first."""

    async def ack(self, delivery: Delivery) -> bool:
        """Done: remove the message."""

    async def retry(self, delivery: Delivery, *, delay_s: float, error: str | None) -> bool:
        """Make the message visible again after `delay_s`, keeping `error` as its last."""

    async def dead_letter(self, delivery: Delivery, *, reason: str) -> bool:
        """Move the message to the dead letters (or drop it when the queue keeps none)."""

    async def extend_lease(self, delivery: Delivery, *, seconds: float) -> bool:
        """Keep the message invisible for `seconds` more from now (a handler still runs)."""

    async def release(self, delivery: Delivery) -> bool:
        """Give back a message that was received but not started: visible now, the
        delivery not counted as an attempt where the backend allows."""

    async def stats(self) -> QueueStats: ...

    async def check(self) -> CheckResult:
        """Can this queue be used? Never raises; the error never contains a secret."""

    async def dead_letters(self, *, limit: int, cursor: str | None = None) -> DeadLetterPage: ...

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        """Move dead letters (all, or those with these ids) back to the queue."""

    async def delete_dead_letters(self, ids: Sequence[str]) -> int: ...
