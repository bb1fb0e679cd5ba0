"""The dead letters of a RabbitMQ queue: its `<name>.dlq` queue.

AMQP cannot read a queue without taking messages from it, so browsing gets messages
without acking them on a channel of its own, then closes that channel: RabbitMQ puts
them all back, in their places. Redrive and delete work the same way and ack only the
messages they move or drop. A dead letter's id is the `conveyor-dead-letter-id` header
given when it was dead-lettered (the message id for messages dead-lettered otherwise);
the page cursor is an offset. Since a listing holds the letters it reads, listings
and redrives take turns, across processes too (see `_borrowed`): "redrive all"
moves every letter, never only those nobody was reading.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelLockedResource

from conveyor.exceptions import BadRequest
from conveyor.queues import headers as parse
from conveyor.queues.base import DeadLetter, DeadLetterPage
from conveyor.queues.rabbitmq import wire
from conveyor.queues.rabbitmq.connection import Timeouts
from conveyor.queues.rabbitmq.errors import Peer, translated
from conveyor.queues.rabbitmq.topology import Topology, count, temporary_channel

#: Browsing reads through the dead letters up to this many.
MAX_SCAN = 10_000
#: Messages redriven per round of concurrent publishes.
CHUNK = 100
#: How long a listing or redrive waits for another one to end.
LOCK_WAIT_S = 60.0
#: Pauses while another process holds the dead letters.
LOCK_PAUSE_S = 0.02
LOCK_PAUSE_MAX_S = 0.5

Publish = Callable[[bytes, wire.Properties, str], Awaitable[None]]


class DeadLetters:
    def __init__(
        self,
        connection: aio_pika.RobustConnection,
        topology: Topology,
        publish: Publish,
        peer: Peer,
        timeouts: Timeouts,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._publish = publish
        self._peer = peer
        self._timeouts = timeouts
        #: Listings and redrives of this process, one at a time (see `_borrowed`).
        self._alone = asyncio.Lock()
        #: The connection's negotiated frame size: every copy is made to fit in it.
        self.frame_max = wire.FRAME_MAX

    def _step(self, action: str) -> contextlib.AbstractAsyncContextManager[None]:
        return translated(self._peer, action, timeout_s=self._timeouts.operation_s)

    @contextlib.asynccontextmanager
    async def _borrowed(self) -> AsyncIterator[tuple[aio_pika.Channel, AbstractQueue]]:
        """The dead-letter queue on a channel whose close gives back what was not acked,
        held alone: a listing takes the letters off the queue while it reads them, so a
        redrive (or another listing) beside it would miss those."""
        waiting = "waiting for another listing or redrive of the dead letters to end"
        async with translated(self._peer, waiting, timeout_s=LOCK_WAIT_S):
            channel = await self._locked_channel()
        try:
            async with self._step("opening the dead-letter queue"):
                queue = await channel.get_queue(self._topology.dead_letters, ensure=False)
            yield channel, queue
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeouts.operation_s):
                    await channel.queue_delete(self._topology.lock)
                    await channel.close()
            self._alone.release()

    async def _locked_channel(self) -> aio_pika.Channel:
        """A channel holding the lock: an exclusive queue, which only one connection (one
        process) can have at a time, and which RabbitMQ deletes if that process dies."""
        await self._alone.acquire()
        try:
            pause_s = LOCK_PAUSE_S
            while True:
                channel = await temporary_channel(self._connection)
                try:
                    await channel.declare_queue(self._topology.lock, exclusive=True)
                    return channel
                except ChannelLockedResource:
                    # Another process lists or redrives: wait for it (bounded by the
                    # caller's timeout).
                    await asyncio.sleep(pause_s)
                    pause_s = min(pause_s * 2, LOCK_PAUSE_MAX_S)
        except BaseException:
            self._alone.release()
            raise

    async def _next(self, queue: AbstractQueue) -> AbstractIncomingMessage | None:
        async with self._step("reading the dead letters"):
            return await queue.get(no_ack=False, fail=False, timeout=self._timeouts.operation_s)

    async def page(self, *, limit: int, cursor: str | None) -> DeadLetterPage:
        offset = _offset(cursor)
        if offset + limit >= MAX_SCAN:
            raise BadRequest(f"dead letters can be browsed up to the first {MAX_SCAN}")
        seen: list[AbstractIncomingMessage] = []
        async with self._borrowed() as (_, queue):
            while len(seen) <= offset + limit and (message := await self._next(queue)):
                seen.append(message)
        items = [letter(m) for m in seen[offset : offset + limit]]
        more = len(seen) > offset + limit
        return DeadLetterPage(items, str(offset + limit) if more else None)

    async def redrive(self, ids: Sequence[str] | None) -> int:
        return await self._settle(ids, redrive=True)

    async def delete(self, ids: Sequence[str]) -> int:
        return await self._settle(ids, redrive=False)

    async def _settle(self, ids: Sequence[str] | None, *, redrive: bool) -> int:
        wanted = None if ids is None else set(ids)
        done = 0
        async with self._borrowed() as (channel, queue):
            async with self._step("counting the dead letters"):
                remaining = await count(channel, self._topology.dead_letters)
            while remaining > 0:
                chosen: list[AbstractIncomingMessage] = []
                while remaining > 0 and len(chosen) < CHUNK:
                    message = await self._next(queue)
                    remaining = remaining - 1 if message is not None else 0
                    if message is not None and (wanted is None or letter_id(message) in wanted):
                        chosen.append(message)
                failure: BaseException | None = None
                if redrive:
                    results = await asyncio.gather(
                        *(self._back(m) for m in chosen), return_exceptions=True
                    )
                    failure = next((r for r in results if isinstance(r, BaseException)), None)
                    chosen = [m for m, r in zip(chosen, results, strict=True) if r is None]
                async with self._step("removing dead letters"):
                    for message in chosen:
                        await message.ack()
                done += len(chosen)
                if failure is not None:
                    raise failure
        return done

    async def _back(self, message: AbstractIncomingMessage) -> None:
        fresh = wire.copy(
            message,
            wire.Stamp.of(message),
            attempt=1,
            drop_headers=(wire.HEADER_DEAD_AT, wire.HEADER_DEAD_LETTER_ID),
            frame_max=self.frame_max,
        )
        await self._publish(message.body, fresh, self._topology.name)


def letter_id(message: AbstractIncomingMessage, stamp: wire.Stamp | None = None) -> str:
    given = (message.headers or {}).get(wire.HEADER_DEAD_LETTER_ID)
    if isinstance(given, str) and given:
        return given
    return (stamp or wire.Stamp.of(message)).id


def letter(message: AbstractIncomingMessage) -> DeadLetter:
    stamp = wire.Stamp.of(message)
    dead_at = parse.epoch_ms(
        stamp.headers.get(wire.HEADER_DEAD_AT), header=wire.HEADER_DEAD_AT, message_id=stamp.id
    )
    return DeadLetter(
        id=letter_id(message, stamp),
        message_id=stamp.id,
        body=message.body,
        headers=stamp.headers,
        attempts=stamp.attempt,
        last_error=stamp.headers.get(wire.HEADER_LAST_ERROR),
        published_at_ms=stamp.published_at_ms,
        dead_at_ms=dead_at,
    )


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if parse.integer(cursor) is None or cursor.startswith("-"):
        raise BadRequest(f"{cursor!r} is not a dead-letter cursor of this queue")
    return int(cursor)
