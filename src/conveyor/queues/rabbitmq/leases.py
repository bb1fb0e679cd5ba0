"""Leases: the visibility timeout RabbitMQ does not have.

RabbitMQ keeps a delivered message with its consumer until it is acked or rejected, or
until the channel closes, however long that takes: there is no visibility timeout and
nothing to extend. Conveyor's contract is SQS-like instead: a received message is
hidden for the queue's `visibility_timeout_s`, a handler that needs longer extends its
lease, and a lease that runs out makes the message available again.

So the backend keeps the lease itself. Each handed-out delivery gets a timer; when it
fires before the delivery is settled, the lease is lost (settling it later returns
False) and the backend puts the message back: it publishes a new copy with the attempt
counted (or dead-letters it once `max_attempts` deliveries all ran out) and then acks
the old copy. `extend_lease` just moves the timer, with no broker round trip. If the
process dies instead, the channel closes and RabbitMQ itself redelivers the message;
the receiver sees it flagged `redelivered` and counts that lost attempt the same way.

The timer lives in the process that received the message, which is the only one that
could still ack it: a lease cannot outlive its process, and a process cannot lose a
lease while it is alive except by letting it run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import ChannelInvalidStateError

from conveyor.queues.rabbitmq.wire import Stamp

log = logging.getLogger(__name__)

#: A lease timer firing this much after its time: the event loop was blocked.
LATE_S = 1.0
#: Then the lease lasts this much longer, for its holder to extend it.
STALL_GRACE_S = 6.0


class Lease:
    """One delivery handed out and not yet settled."""

    __slots__ = ("_timer", "held", "message", "stamp")

    def __init__(self, message: AbstractIncomingMessage, stamp: Stamp) -> None:
        self.message = message
        self.stamp = stamp
        self.held = True
        self._timer: asyncio.TimerHandle | None = None


def channel_open(message: AbstractIncomingMessage) -> bool:
    """Can this delivery still be acked? (Its channel closed: RabbitMQ took it back.)"""
    try:
        return not message.channel.is_closed
    except ChannelInvalidStateError:
        return False


class Leases:
    def __init__(self, on_expiry: Callable[[Lease], Coroutine[Any, Any, None]]) -> None:
        self._on_expiry = on_expiry
        self._held: set[Lease] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._held)

    def grant(self, message: AbstractIncomingMessage, stamp: Stamp, seconds: float) -> Lease:
        lease = Lease(message, stamp)
        self._held.add(lease)
        self._arm(lease, seconds)
        return lease

    def take(self, lease: Lease) -> bool:
        """Claim the lease for settling; False when it was lost."""
        if not lease.held or not channel_open(lease.message):
            return False
        self._drop(lease)
        return True

    def extend(self, lease: Lease, seconds: float) -> bool:
        if not lease.held or not channel_open(lease.message):
            return False
        self._arm(lease, seconds)
        return True

    def _arm(self, lease: Lease, seconds: float) -> None:
        if lease._timer is not None:
            lease._timer.cancel()
        loop = asyncio.get_running_loop()
        lease._timer = loop.call_later(max(seconds, 0), self._expire, lease)

    def _drop(self, lease: Lease) -> None:
        lease.held = False
        self._held.discard(lease)
        if lease._timer is not None:
            lease._timer.cancel()
            lease._timer = None

    def _expire(self, lease: Lease) -> None:
        if not lease.held:
            return
        timer = lease._timer
        if timer is not None and asyncio.get_running_loop().time() - timer.when() > LATE_S:
            # The timer is late: the event loop was blocked. The connection kept the
            # message here all along, so give the worker's lease keeper a chance to
            # extend the lease before it is taken back.
            self._arm(lease, STALL_GRACE_S)
            return
        self._drop(lease)
        task = asyncio.create_task(self._on_expiry(lease))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not put back a message whose lease expired: %s", task.exception())

    async def close(self, timeout_s: float) -> None:
        """Forget every lease (closing the channel gives the messages back) and let
        the expiries already started finish, for at most `timeout_s`."""
        for lease in list(self._held):
            self._drop(lease)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
