"""The RabbitMQ queues behind one Conveyor queue, and how they are declared.

For a Conveyor queue named `orders`:

- `orders`: the queue itself (durable; published to through the default exchange).
- `orders.dlq`: its dead letters (durable).
- `orders.delay.<N>s`, N = 1, 2, 4 … 16384: retry-with-delay buckets. A retried message
  is published to the smallest bucket at least as long as its delay, with a per-message
  expiration of exactly that delay; on expiry RabbitMQ dead-letters it back to `orders`
  (`x-dead-letter-exchange` = the default exchange, routing key `orders`).

RabbitMQ expires a message only once it reaches the head of its queue, so a message
can wait behind a longer-delayed one published earlier into the same bucket. Bucket
bounds double, so that wait is shorter than the message's own delay (under a second
for delays shorter than a second): a retry never comes early, and comes late only by
less than it was delayed. One queue per exact delay would avoid the wait, at the cost
of an unbounded number of queues.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed

from conveyor.queues.base import QueueStats

log = logging.getLogger(__name__)

#: Upper bounds of the delay buckets, in seconds: 1 s to about 4.5 h (longer delays go
#: to the last bucket, still with their exact expiration).
DELAY_BUCKETS_S = tuple(2**i for i in range(15))
#: Longest delay honoured (RabbitMQ expirations are 32-bit milliseconds).
MAX_DELAY_S = 24 * 3600


@dataclass(frozen=True)
class Topology:
    name: str

    @property
    def dead_letters(self) -> str:
        return f"{self.name}.dlq"

    @property
    def lock(self) -> str:
        """An exclusive queue held while the dead letters are read (never declared
        durably: it lives as long as the connection that holds it)."""
        return f"{self.name}.dlq.lock"

    def delay_queue(self, bucket_s: int) -> str:
        return f"{self.name}.delay.{bucket_s}s"

    def delay_for(self, delay_s: float) -> tuple[str, int]:
        """The bucket queue for a retry after `delay_s`, and the expiration in ms."""
        delay_ms = max(1, round(min(delay_s, MAX_DELAY_S) * 1000))
        for bucket_s in DELAY_BUCKETS_S:
            if delay_ms <= bucket_s * 1000:
                return self.delay_queue(bucket_s), delay_ms
        return self.delay_queue(DELAY_BUCKETS_S[-1]), delay_ms

    def delay_queues(self) -> list[str]:
        return [self.delay_queue(b) for b in DELAY_BUCKETS_S]

    def queues(self) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """Every queue with the arguments it is declared with."""
        yield self.name, None
        yield self.dead_letters, None
        back = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.name}
        for queue in self.delay_queues():
            yield queue, back


async def temporary_channel(connection: AbstractConnection) -> aio_pika.Channel:
    """A plain channel (not restored on reconnect): for work that may close it."""
    channel = aio_pika.Channel(connection, publisher_confirms=False)
    await channel.initialize()
    return channel


async def declare(connection: AbstractConnection, topology: Topology) -> None:
    """Declare every queue, idempotently.

    A queue that exists with other settings (say a quorum queue made by an operator),
    or that this user may not configure, is used as it is when it exists.
    """
    channel = await temporary_channel(connection)
    try:
        for name, arguments in topology.queues():
            try:
                await channel.declare_queue(name, durable=True, arguments=arguments)
            except (ChannelPreconditionFailed, ChannelAccessRefused) as exc:
                log.warning("using RabbitMQ queue %r as it is: %s", name, exc)
                await channel.close()
                channel = await temporary_channel(connection)
                await channel.declare_queue(name, passive=True)
    finally:
        await channel.close()


async def count(channel: aio_pika.Channel, queue: str) -> int:
    """Ready messages in `queue`, from a passive declare (raises if it is missing)."""
    declared = await channel.declare_queue(queue, passive=True)
    return int(declared.declaration_result.message_count or 0)


async def sizes(connection: AbstractConnection, topology: Topology) -> QueueStats:
    """Ready, dead and delayed messages, from passive declares."""
    channel = await temporary_channel(connection)
    try:
        ready = await count(channel, topology.name)
        dead = await count(channel, topology.dead_letters)
        delayed = 0
        for name in topology.delay_queues():
            delayed += await count(channel, name)
    finally:
        await channel.close()
    # AMQP does not tell how many messages consumers hold unacked.
    return QueueStats(ready=ready, in_flight=None, dead=dead, delayed=delayed)


async def verify(connection: AbstractConnection, topology: Topology) -> None:
    """Raise if any of the queues is missing."""
    channel = await temporary_channel(connection)
    try:
        for name, _ in topology.queues():
            await count(channel, name)
    finally:
        await channel.close()
