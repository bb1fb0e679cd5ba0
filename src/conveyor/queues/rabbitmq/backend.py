"""The RabbitMQ backend: one robust connection per registered queue.

Publishing goes through the default exchange to the queue, persistent, on a channel
with publisher confirms and `mandatory` set: `publish` returns only after RabbitMQ has
confirmed the message, and a message no queue would take (the queue was deleted) is an
error, not a silent success. Receiving, leases and dead letters are described in
`consumer`, `leases`, `topology` and `dead_letters`.

Settling is in `settle`: every action other than a plain ack publishes a new copy of
the message, confirmed, and only then acks the delivered one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from types import FrameType
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel
from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelInvalidStateError

from conveyor.exceptions import BackendError, ConnectionFailed, ConveyorError, PublishFailed
from conveyor.queues import headers as parse
from conveyor.queues.base import (
    CheckResult,
    DeadLetterPage,
    Delivery,
    OutgoingMessage,
    PublishResult,
    QueueBackend,
    QueueStats,
)
from conveyor.queues.model import Credentials, Queue
from conveyor.queues.rabbitmq import frames, topology, wire
from conveyor.queues.rabbitmq.batch import publish_confirmed
from conveyor.queues.rabbitmq.connection import (
    Timeouts,
    connect,
    connection_frame_max,
    connection_url,
    peer_of,
)
from conveyor.queues.rabbitmq.consumer import Prefetcher
from conveyor.queues.rabbitmq.dead_letters import DeadLetters
from conveyor.queues.rabbitmq.errors import translated
from conveyor.queues.rabbitmq.leases import Lease, Leases, channel_open
from conveyor.queues.rabbitmq.settle import Settler

log = logging.getLogger(__name__)
#: An AMQP heartbeat: frame type 8 on channel 0, empty, frame end.
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

frames.install()


def _socket_writer(connection: object) -> Any:
    """The transport aiormq writes a connection's frames to: a local of its writer task
    (aiormq keeps it nowhere else; it is pinned exactly). Read while the task waits."""
    get_coro = getattr(getattr(connection, "_writer_task", None), "get_coro", None)
    frame = getattr(get_coro(), "cr_frame", None) if callable(get_coro) else None
    writer = frame.f_locals.get("writer") if isinstance(frame, FrameType) else None
    return writer.transport if isinstance(writer, asyncio.StreamWriter) else None


class _Open:
    """What exists only while the backend is open."""

    def __init__(self, backend: RabbitMQBackend, connection: aio_pika.RobustConnection) -> None:
        self.connection = connection
        self.channel: AbstractRobustChannel | None = None
        self.prefetcher = Prefetcher(connection, backend.queue.name, backend.peer, backend.timeouts)
        self.dead = DeadLetters(
            connection, backend.topology, backend.send, backend.peer, backend.timeouts
        )


class RabbitMQBackend(QueueBackend):
    #: AMQP has no answer to basic.ack: an ack is sent, never confirmed.
    acks_confirmed = False

    def __init__(
        self, queue: Queue, credentials: Credentials, *, timeouts: Timeouts | None = None
    ) -> None:
        self.queue = queue
        self.timeouts = timeouts or Timeouts()
        self.topology = topology.Topology(queue.name)
        self._url = connection_url(queue, credentials, self.timeouts)
        self.peer = peer_of(self._url)
        self._open: _Open | None = None
        self._leases = Leases(self._expired)
        self._settler = Settler(queue.options, self.topology, self.send, self.peer, self.timeouts)

    def _step(self, action: str) -> contextlib.AbstractAsyncContextManager[None]:
        return translated(self.peer, action, timeout_s=self.timeouts.operation_s)

    def _state(self) -> _Open:
        if self._open is None:
            raise BackendError(f"the RabbitMQ backend of queue {self.queue.name!r} is not open")
        return self._open

    async def open(self) -> None:
        if self._open is not None:
            return
        connection = await connect(self._url, self.peer, self.timeouts)
        state = _Open(self, connection)
        try:
            async with self._step("declaring the queues"):
                await topology.declare(connection, self.topology)
                state.channel = await connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        connection.close_callbacks.add(self._connection_lost)
        connection.reconnect_callbacks.add(self._reconnected)
        frame_max = connection_frame_max(connection)
        self._settler.frame_max = state.dead.frame_max = frame_max
        self._open = state

    async def close(self) -> None:
        state = self._open
        if state is None:
            return
        for message in await state.prefetcher.stop():
            with contextlib.suppress(Exception):  # else closing the channel gives it back
                await self._settler.give_back(message)
        await self._leases.close(self.timeouts.operation_s)
        self._open = None
        await state.prefetcher.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeouts.operation_s):
                await state.connection.close()

    def _connection_lost(self, _: object, exc: BaseException | None = None) -> None:
        if self._open is not None:  # not closed on purpose
            reason = f"{type(exc).__name__}: {exc}" if exc is not None else "closed"
            log.warning(
                "lost the connection to RabbitMQ at %s (%s); reconnecting; messages "
                "delivered on it and not acked yet come back",
                self.peer,
                reason[:300],
            )

    def _reconnected(self, _: object) -> None:
        log.warning("reconnected to RabbitMQ at %s", self.peer)

    def heartbeat_while_blocked(self) -> None:
        """Send an AMQP heartbeat from another thread while the event loop is blocked (a
        handler calling blocking code; see `worker.watchdog`), so that RabbitMQ does not
        close the connection and hand the messages this worker holds, the running one
        too, to other consumers. Best effort: only on a plain TCP connection with nothing
        else waiting to be sent, since the frame goes straight to the socket."""
        state = self._open
        underlay = state.connection.transport if state is not None else None
        transport = _socket_writer(getattr(underlay, "connection", None))
        # asyncio's or uvloop's transport (no common base class): read alike.
        if (
            transport is None
            or transport.is_closing()
            or transport.get_extra_info("sslcontext") is not None
            or transport.get_write_buffer_size()
        ):
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # full or closed: the next beat may do
                os.write(sock.fileno(), HEARTBEAT_FRAME)

    # Publishing

    async def _channel(self) -> AbstractChannel:
        """The confirming channel, failing fast when the connection is down."""
        state = self._state()
        # Checked first: aio-pika would otherwise wait for the reconnection.
        if state.channel is None or not state.connection.connected.is_set():
            raise ChannelInvalidStateError("not connected")
        channel = await state.channel.get_underlay_channel()
        if channel.is_closed:
            raise ChannelInvalidStateError("channel closed")
        return channel

    async def send(self, body: bytes, properties: wire.Properties, routing_key: str) -> None:
        """Publish and wait for RabbitMQ's confirm (an unroutable message is an error)."""
        timeout_s = self.timeouts.operation_s
        if not wire.fits(properties, self._settler.frame_max):
            # RabbitMQ would close the connection, and every delivery on it, over it.
            raise PublishFailed(
                "the message's headers do not fit in one AMQP frame "
                f"({self._settler.frame_max} bytes)"
            )
        async with translated(self.peer, "publishing", timeout_s=timeout_s, enforce=False):
            channel = await self._channel()
            await channel.basic_publish(
                body,
                routing_key=routing_key,
                properties=properties,
                mandatory=True,
                timeout=timeout_s,
            )

    async def publish(self, message: OutgoingMessage) -> PublishResult:
        await self.send(message.body, wire.outgoing(message), self.queue.name)
        return PublishResult(message.id, message.id)

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        async with self._step("publishing a batch"):
            channel = await self._channel()
            # One write for all of them, every confirm awaited (see `batch`).
            outgoing = [(m.body, wire.outgoing(m)) for m in messages]
            await publish_confirmed(channel, self.queue.name, outgoing)
        return [PublishResult(m.id, m.id) for m in messages]

    # Receiving and settling

    async def receive(self, max_messages: int, *, wait_s: float = 0) -> list[Delivery]:
        if max_messages < 1:
            return []
        state = self._state()
        await state.prefetcher.ensure(max_messages)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        got: list[Delivery] = []
        while True:
            for message in state.prefetcher.take(max_messages - len(got)):
                delivery = await self._admit(message)
                if delivery is not None:
                    got.append(delivery)
            if got or loop.time() >= deadline:
                break
            await state.prefetcher.wait(deadline - loop.time())
        if not got and not state.connection.connected.is_set():
            raise ConnectionFailed(
                f"the connection to RabbitMQ at {self.peer} is down; reconnecting"
            )
        return got

    async def _admit(self, message: AbstractIncomingMessage) -> Delivery | None:
        if not channel_open(message):
            return None  # its channel closed while it waited: RabbitMQ took it back
        stamp = wire.Stamp.of(message, max_attempts=self.queue.options.max_attempts)
        if message.redelivered:
            # An earlier delivery of this copy was never settled: count it, put it back.
            log.warning(
                "RabbitMQ delivered message %s again (attempt %d): an earlier delivery "
                "was never settled, or its ack was lost with its connection",
                parse.escape(stamp.id),
                stamp.attempt,
            )
            try:
                await self._settler.put_back(message, stamp)
            except ConveyorError as exc:  # given back to RabbitMQ; the others still go out
                log.warning("could not count a redelivered message: %s", exc)
            return None
        lease = self._leases.grant(message, stamp, self.queue.options.visibility_timeout_s)
        return Delivery(
            id=stamp.id,
            body=message.body,
            headers=stamp.visible_headers(),
            attempt=stamp.attempt,
            published_at_ms=stamp.published_at_ms,
            receipt=lease,
            backend_id=stamp.id,
            ordering_key=stamp.ordering_key,
        )

    def _take(self, delivery: Delivery) -> Lease | None:
        lease = delivery.receipt
        if not isinstance(lease, Lease) or not self._leases.take(lease):
            return None
        return lease

    async def ack(self, delivery: Delivery) -> bool:
        lease = self._take(delivery)
        return lease is not None and await self._settler.ack(lease.message)

    async def retry(self, delivery: Delivery, *, delay_s: float, error: str | None) -> bool:
        lease = self._take(delivery)
        return lease is not None and await self._settler.retry(
            lease.message, lease.stamp, delay_s, error
        )

    async def dead_letter(self, delivery: Delivery, *, reason: str) -> bool:
        lease = self._take(delivery)
        return lease is not None and await self._settler.bury(lease.message, lease.stamp, reason)

    async def extend_lease(self, delivery: Delivery, *, seconds: float) -> bool:
        lease = delivery.receipt
        return isinstance(lease, Lease) and self._leases.extend(lease, seconds)

    async def release(self, delivery: Delivery) -> bool:
        lease = self._take(delivery)
        return lease is not None and await self._settler.release(lease.message, lease.stamp)

    async def _expired(self, lease: Lease) -> None:
        if channel_open(lease.message):
            await self._settler.put_back(lease.message, lease.stamp)

    # Inspection and dead letters

    async def stats(self) -> QueueStats:
        connection = self._state().connection
        async with self._step("reading the queue sizes"):
            return await topology.sizes(connection, self.topology)

    async def check(self) -> CheckResult:
        try:
            await self.open()
            connection = self._state().connection
            if not connection.connected.is_set():
                return CheckResult(False, f"not connected to RabbitMQ at {self.peer}")
            async with self._step("checking the queues"):
                await topology.verify(connection, self.topology)
        except ConveyorError as exc:
            return CheckResult(False, exc.message)
        except Exception as exc:
            return CheckResult(False, f"unexpected {type(exc).__name__} while checking RabbitMQ")
        return CheckResult(True)

    async def dead_letters(self, *, limit: int, cursor: str | None = None) -> DeadLetterPage:
        return await self._state().dead.page(limit=limit, cursor=cursor)

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        return await self._state().dead.redrive(ids)

    async def delete_dead_letters(self, ids: Sequence[str]) -> int:
        return await self._state().dead.delete(ids)
