"""An in-memory queue: the reference semantics of `QueueBackend`, in one process.

For unit tests and examples, like dramatiq's stub broker or httpx's `MockTransport`:
it passes the same contract as every broker (`tests/contract/queue_contract.py`), with
no server, and nothing survives the process. Leases and delays follow `clock`
(`time.monotonic` unless a test gives its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.exceptions import BadRequest, ConnectionFailed
from conveyor.queues.base import (
    HEADER_ATTEMPT,
    HEADER_MESSAGE_ID,
    HEADER_PUBLISHED_AT,
    CheckResult,
    DeadLetter,
    DeadLetterPage,
    Delivery,
    OutgoingMessage,
    PublishResult,
    QueueBackend,
    QueueStats,
    now_ms,
)
from conveyor.queues.model import Queue, QueueOptions, QueueType

#: The error a dead letter keeps when its last lease expired unsettled.
LEASE_EXPIRED_ERROR = "the lease expired before the message was settled"


@dataclass
class _Stored:
    message: OutgoingMessage
    number: int
    #: Deliveries so far.
    attempt: int = 0
    #: When it may be delivered (again): its delay, or the end of its lease.
    visible_at: float = 0.0
    #: The lease of its current delivery, while it has one.
    lease: int | None = None
    last_error: str | None = None
    dead_at_ms: int | None = field(default=None)

    def letter(self) -> DeadLetter:
        m = self.message
        return DeadLetter(
            str(self.number), m.id, m.body, dict(m.headers), self.attempt,
            self.last_error, m.published_at_ms, self.dead_at_ms,
        )  # fmt: skip


def memory_backend(name: str = "memory", **options: Any) -> QueueBackend:
    """A new, empty in-memory queue named `name`, with these `QueueOptions`."""
    now = datetime.now(UTC)
    queue = Queue(
        id=f"memory-{name}", name=name, type=QueueType.EMBEDDED, url=None, username=None,
        has_password=False, region=None, description=None, options=QueueOptions(**options),
        created_at=now, updated_at=now,
    )  # fmt: skip
    return MemoryBackend(queue)


class MemoryBackend(QueueBackend):
    """One queue, held in this process's memory."""

    def __init__(self, queue: Queue, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.queue = queue
        self._clock = clock
        self._numbers = itertools.count(1)
        self._leases = itertools.count(1)
        self._live: dict[int, _Stored] = {}
        self._dead: dict[int, _Stored] = {}
        self._published = asyncio.Event()
        self._closed = False

    async def open(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    async def publish(self, message: OutgoingMessage) -> PublishResult:
        (result,) = await self.publish_batch([message])
        return result

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        if self._closed:
            raise ConnectionFailed(f"queue {self.queue.name!r} is closed")
        results = []
        for message in messages:
            stored = _Stored(message, next(self._numbers), visible_at=self._clock())
            self._live[stored.number] = stored
            results.append(PublishResult(message.id, str(stored.number)))
        self._published.set()
        return results

    async def receive(self, max_messages: int, *, wait_s: float = 0) -> list[Delivery]:
        deadline = self._clock() + wait_s
        while True:
            self._published.clear()
            self._expire_leases()
            got = [self._deliver(s) for s in self._visible()[:max_messages]]
            remaining = deadline - self._clock()
            if got or remaining <= 0:
                return got
            upcoming = [s.visible_at for s in self._live.values() if s.visible_at > self._clock()]
            wait = min([remaining, *(t - self._clock() for t in upcoming)])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._published.wait(), max(wait, 0.001))

    async def ack(self, delivery: Delivery) -> bool:
        return self._settled(delivery) is not None and bool(self._live.pop(delivery.receipt[0]))

    async def retry(self, delivery: Delivery, *, delay_s: float, error: str | None) -> bool:
        stored = self._settled(delivery)
        if stored is None:
            return False
        stored.lease, stored.last_error = None, error
        stored.visible_at = self._clock() + delay_s
        return True

    async def dead_letter(self, delivery: Delivery, *, reason: str) -> bool:
        stored = self._settled(delivery)
        if stored is None:
            return False
        self._bury(stored, reason)
        return True

    async def extend_lease(self, delivery: Delivery, *, seconds: float) -> bool:
        stored = self._settled(delivery)
        if stored is None:
            return False
        stored.visible_at = self._clock() + seconds
        return True

    async def release(self, delivery: Delivery) -> bool:
        stored = self._settled(delivery)
        if stored is None:
            return False
        stored.lease, stored.attempt = None, stored.attempt - 1
        stored.visible_at = self._clock()
        self._published.set()
        return True

    async def stats(self) -> QueueStats:
        self._expire_leases()
        now = self._clock()
        leased = [s for s in self._live.values() if s.lease is not None]
        delayed = [s for s in self._live.values() if s.lease is None and s.visible_at > now]
        ready = len(self._live) - len(leased) - len(delayed)
        return QueueStats(ready, len(leased), len(self._dead), len(delayed))

    async def check(self) -> CheckResult:
        if self._closed:
            return CheckResult(False, "the queue is closed")
        return CheckResult(True)

    async def dead_letters(self, *, limit: int, cursor: str | None = None) -> DeadLetterPage:
        after = _number(cursor) if cursor else 0
        numbers = sorted(n for n in self._dead if n > after)
        page = [self._dead[n].letter() for n in numbers[:limit]]
        more = len(numbers) > limit
        return DeadLetterPage(page, page[-1].id if more and page else None)

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        numbers = list(self._dead) if ids is None else [_number(i) for i in ids]
        moved = 0
        for number in numbers:
            stored = self._dead.pop(number, None)
            if stored is not None:
                stored.attempt, stored.lease, stored.dead_at_ms = 0, None, None
                stored.visible_at = self._clock()
                self._live[number] = stored
                moved += 1
        self._published.set()
        return moved

    async def delete_dead_letters(self, ids: Sequence[str]) -> int:
        return sum(self._dead.pop(_number(i), None) is not None for i in ids)

    def _visible(self) -> list[_Stored]:
        now = self._clock()
        return [s for s in self._live.values() if s.lease is None and s.visible_at <= now]

    def _deliver(self, stored: _Stored) -> Delivery:
        stored.attempt += 1
        stored.lease = next(self._leases)
        stored.visible_at = self._clock() + self.queue.options.visibility_timeout_s
        m = stored.message
        headers = {
            **m.headers,
            HEADER_MESSAGE_ID: m.id,
            HEADER_ATTEMPT: str(stored.attempt),
            HEADER_PUBLISHED_AT: str(m.published_at_ms),
        }
        return Delivery(
            m.id, m.body, headers, stored.attempt, m.published_at_ms,
            (stored.number, stored.lease), str(stored.number), m.ordering_key,
        )  # fmt: skip

    def _expire_leases(self) -> None:
        """Leases that ran out: the message is visible again, or dead once its attempts
        are spent (a message that crashes its consumer every time must not loop)."""
        now = self._clock()
        for stored in list(self._live.values()):
            if stored.lease is None or stored.visible_at > now:
                continue
            stored.lease = None
            if stored.attempt >= self.queue.options.max_attempts:
                self._bury(stored, LEASE_EXPIRED_ERROR)

    def _settled(self, delivery: Delivery) -> _Stored | None:
        """The message of `delivery` while its lease holds, else None."""
        number, lease = delivery.receipt
        stored = self._live.get(number)
        if stored is None or stored.lease != lease or stored.visible_at <= self._clock():
            return None
        return stored

    def _bury(self, stored: _Stored, reason: str) -> None:
        del self._live[stored.number]
        stored.lease, stored.last_error, stored.dead_at_ms = None, reason, now_ms()
        self._dead[stored.number] = stored


def _number(value: str) -> int:
    if not value.isdigit():
        raise BadRequest(f"{value!r} is not a dead-letter id of this queue")
    return int(value)
