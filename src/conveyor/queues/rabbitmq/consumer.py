"""Receiving: one `basic.consume` with a bounded prefetch, feeding a local buffer.

The prefetch (RabbitMQ's limit on unacked deliveries to this consumer) follows what
the receiver asks for: it is the largest `max_messages` of any `receive` so far, so a
worker that asks for as many messages as it has free handler slots gets a prefetch
equal to its concurrency. Buffered messages are invisible to other consumers but not
leased yet; the backend gives them back when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from aio_pika import RobustConnection
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustQueue

from conveyor.queues.rabbitmq.connection import Timeouts
from conveyor.queues.rabbitmq.errors import Peer, translated

#: The largest prefetch a receiver can ask for.
MAX_PREFETCH = 1000


class Prefetcher:
    def __init__(
        self, connection: RobustConnection, queue: str, peer: Peer, timeouts: Timeouts
    ) -> None:
        self._connection = connection
        self._queue_name = queue
        self._peer = peer
        self._timeouts = timeouts
        self._buffer: deque[AbstractIncomingMessage] = deque()
        self._arrived = asyncio.Event()
        self._lock = asyncio.Lock()
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractRobustQueue | None = None
        self._tag: str | None = None
        self.prefetch = 0

    async def ensure(self, prefetch: int) -> None:
        """Consume with a prefetch of at least `prefetch` (bounded)."""
        prefetch = max(1, min(prefetch, MAX_PREFETCH))
        if prefetch <= self.prefetch:
            return
        async with (
            self._lock,
            translated(self._peer, "starting to consume", timeout_s=self._timeouts.operation_s),
        ):
            if prefetch <= self.prefetch:
                return
            if self._channel is None:
                self._channel = await self._connection.channel(publisher_confirms=False)
            if self._queue is None:
                self._queue = await self._channel.declare_queue(self._queue_name, passive=True)
            # A per-consumer prefetch applies to consumers started after it is set.
            await self._channel.set_qos(prefetch_count=prefetch)
            previous, self._tag = self._tag, await self._queue.consume(self._arrive)
            self.prefetch = prefetch
            if previous is not None:
                with contextlib.suppress(Exception):  # else it ends with its channel
                    await self._queue.cancel(previous)

    async def _arrive(self, message: AbstractIncomingMessage) -> None:
        self._buffer.append(message)
        self._arrived.set()

    def take(self, limit: int) -> list[AbstractIncomingMessage]:
        taken = [self._buffer.popleft() for _ in range(min(limit, len(self._buffer)))]
        if not self._buffer:
            self._arrived.clear()
        return taken

    async def wait(self, timeout_s: float) -> None:
        """Until a message is buffered, for at most `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout_s, 0)):
                await self._arrived.wait()

    async def stop(self) -> list[AbstractIncomingMessage]:
        """Stop consuming; the messages still buffered (the caller gives them back)."""
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeouts.operation_s):
                    await self._queue.cancel(self._tag)
            self._tag = None
            await asyncio.sleep(0)  # deliveries already read reach the buffer
        return self.take(len(self._buffer))

    async def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeouts.operation_s):
                    await self._channel.close()
            self._channel = None
