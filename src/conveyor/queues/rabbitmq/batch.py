"""A batch of messages published on a confirming channel in one write.

aiormq publishes one message per `basic_publish` call, and each call costs a task, a
turn of the channel's lock, a timeout, two futures and a write of its own (a system
call here, a socket read for RabbitMQ): about 100 µs of the event loop per message,
which the outbox relay and the batch endpoint pay for every message they send. Here a
batch takes the lock once, registers one confirmation per delivery tag as
`basic_publish` does, and sends the frames of every message in a single write: half the
client's time per message (`benchmarks/rabbitmq_publish.py`). RabbitMQ's answers settle
the confirmations through aiormq's own handling: an ack, a nack, or a return followed by
its ack for a message no queue took (`mandatory`); a channel that closes fails them.

It relies on the channel's bookkeeping (`lock`, `delivery_tag`, `confirmations`,
`message_id_delivery_tag`, `write_queue`), which is why aiormq is pinned exactly;
`tests/integration/test_rabbitmq.py` covers confirms, a return in a batch, batches that
never went out (their delivery tags given back), a broker that goes silent and a channel
closed under a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiormq import Channel
from aiormq.abc import AbstractChannel, ChannelFrame
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import commands as spec
from pamqp.frame import marshal
from pamqp.header import ContentHeader

from conveyor.queues.rabbitmq.wire import Properties

#: A message as sent: its body and its properties (which carry its `message_id`).
Outgoing = tuple[bytes, Properties]


async def publish_confirmed(
    channel: AbstractChannel, routing_key: str, messages: Sequence[Outgoing]
) -> None:
    """Publish `messages` to the default exchange (persistence is in their properties),
    `mandatory`, and wait until RabbitMQ has answered every one; the first failure is
    then raised (aiormq's `PublishError` for a returned message, `DeliveryError` for a
    nack). A failed batch may have queued some of its messages: whoever retries it sends
    those again, with the same message ids.

    The channel must confirm publishes and raise on returns (else a returned message
    would count as published). Returns are matched by message id, as in aiormq: two
    messages with one id in flight on a channel at once could see each other's return."""
    if not messages:
        return
    if not isinstance(channel, Channel):
        raise TypeError(f"an aiormq channel is needed, not {type(channel).__name__}")
    if not channel.publisher_confirms or not channel.on_return_raises:
        raise ChannelInvalidStateError("the channel must confirm publishes and raise on returns")
    ids = [_message_id(properties) for _, properties in messages]
    confirmations: list[asyncio.Future[Any]] = []
    async with channel.lock:
        if channel.is_closed:
            raise ChannelInvalidStateError("channel closed")
        first_tag = channel.delivery_tag
        number = channel.number
        # The same method frame for every message: encoded once.
        publish = marshal(
            spec.Basic.Publish(exchange="", routing_key=routing_key, mandatory=True), number
        )
        wire: list[bytes] = []
        try:
            for (body, properties), message_id in zip(messages, ids, strict=True):
                channel.delivery_tag += 1
                confirmation = channel.create_future()
                confirmations.append(confirmation)
                channel.confirmations[channel.delivery_tag] = confirmation
                # How aiormq finds the confirmation of a returned message.
                channel.message_id_delivery_tag[message_id] = channel.delivery_tag
                wire += (
                    publish,
                    marshal(ContentHeader(body_size=len(body), properties=properties), number),
                )
                wire += (marshal(chunk, number) for chunk in channel._split_body(body))
            await channel.write_queue.put(ChannelFrame(payload=b"".join(wire), should_close=False))
        except BaseException:
            # RabbitMQ has seen none of them: their delivery tags are free again.
            _forget(channel, ids, first_tag)
            for tag in range(first_tag + 1, channel.delivery_tag + 1):
                channel.confirmations.pop(tag, None)
            channel.delivery_tag = first_tag
            for confirmation in confirmations:
                confirmation.cancel()
            raise
    try:
        outcomes = await asyncio.gather(*confirmations, return_exceptions=True)
    finally:
        _forget(channel, ids, first_tag)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def _message_id(properties: Properties) -> str:
    if not properties.message_id:
        raise ValueError("a message of a batch needs a message_id")
    return properties.message_id


def _forget(channel: Channel, ids: Sequence[str], first_tag: int) -> None:
    """Drop the message id → delivery tag entries of this batch (those a later publish
    of the same id has not taken over)."""
    mapped = channel.message_id_delivery_tag
    for tag, message_id in enumerate(ids, start=first_tag + 1):
        if mapped.get(message_id) == tag:
            del mapped[message_id]
