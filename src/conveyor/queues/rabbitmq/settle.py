"""Settling a delivered message: an ack, or a confirmed copy elsewhere and then the ack.

A broker copy is never changed in place. Retrying, releasing, dead-lettering and
putting back a message whose delivery was never settled all publish a new copy (same
id and body, new headers) and wait for RabbitMQ's confirm before acking the delivered
copy: a crash in between can duplicate the message, never lose it. When the publish
fails the delivered copy is given back to the queue (nack with requeue) at once.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage

from conveyor.exceptions import ConnectionFailed, ConveyorError
from conveyor.queues import base
from conveyor.queues.model import QueueOptions
from conveyor.queues.rabbitmq import wire
from conveyor.queues.rabbitmq.connection import Timeouts
from conveyor.queues.rabbitmq.errors import Peer, translated
from conveyor.queues.rabbitmq.topology import Topology

UNSETTLED = "delivered {n} time(s) without being settled (lease expired or worker lost)"

Send = Callable[[bytes, wire.Properties, str], Awaitable[None]]


class Settler:
    def __init__(
        self,
        options: QueueOptions,
        topology: Topology,
        send: Send,
        peer: Peer,
        timeouts: Timeouts,
    ) -> None:
        self._options = options
        self._topology = topology
        self._send = send
        self._peer = peer
        self._timeouts = timeouts
        #: The connection's negotiated frame size: every copy is made to fit in it.
        self.frame_max = wire.FRAME_MAX

    async def ack(self, message: AbstractIncomingMessage) -> bool:
        try:
            async with translated(self._peer, "acking", timeout_s=self._timeouts.operation_s):
                await message.ack()
        except ConnectionFailed:
            return False  # the channel closed: RabbitMQ has taken the message back
        return True

    async def move(self, message: AbstractIncomingMessage, fresh: wire.Properties, to: str) -> bool:
        """Publish a copy with `fresh` properties to queue `to`, then ack `message`."""
        try:
            await self._send(message.body, fresh, to)
        except ConveyorError:
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            raise
        return await self.ack(message)

    async def retry(
        self, message: AbstractIncomingMessage, stamp: wire.Stamp, delay_s: float, error: str | None
    ) -> bool:
        target, expiration_ms = self._topology.name, None
        if delay_s > 0:
            target, expiration_ms = self._topology.delay_for(delay_s)
        fresh = wire.copy(
            message,
            stamp,
            attempt=stamp.attempt + 1,
            set_headers={wire.HEADER_LAST_ERROR: error} if error else None,
            expiration_ms=expiration_ms,
            frame_max=self.frame_max,
        )
        return await self.move(message, fresh, target)

    async def release(self, message: AbstractIncomingMessage, stamp: wire.Stamp) -> bool:
        """Back to the queue now, this delivery not counted as an attempt."""
        fresh = wire.copy(message, stamp, attempt=stamp.attempt, frame_max=self.frame_max)
        return await self.move(message, fresh, self._topology.name)

    async def bury(self, message: AbstractIncomingMessage, stamp: wire.Stamp, reason: str) -> bool:
        """To the dead letters, keeping `reason` and the attempts made."""
        if not self._options.dead_letter:
            return await self.ack(message)
        headers = {
            wire.HEADER_LAST_ERROR: reason,
            wire.HEADER_DEAD_AT: str(base.now_ms()),
            wire.HEADER_DEAD_LETTER_ID: str(uuid.uuid4()),
        }
        fresh = wire.copy(
            message, stamp, attempt=stamp.attempt, set_headers=headers, frame_max=self.frame_max
        )
        return await self.move(message, fresh, self._topology.dead_letters)

    async def put_back(self, message: AbstractIncomingMessage, stamp: wire.Stamp) -> None:
        """A delivery that was never settled: counted, then once more or, after the last
        attempt, dead."""
        if stamp.attempt >= self._options.max_attempts:
            await self.bury(message, stamp, UNSETTLED.format(n=stamp.attempt))
        else:
            fresh = wire.copy(message, stamp, attempt=stamp.attempt + 1, frame_max=self.frame_max)
            await self.move(message, fresh, self._topology.name)

    async def give_back(self, message: AbstractIncomingMessage) -> None:
        """A prefetched message never handed out: back, not counted (unless RabbitMQ
        redelivered it, which means an earlier delivery went unsettled)."""
        stamp = wire.Stamp.of(message, max_attempts=self._options.max_attempts)
        if message.redelivered:
            await self.put_back(message, stamp)
        else:
            await self.release(message, stamp)
