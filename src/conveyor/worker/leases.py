"""Keeping leases alive while messages wait in the prefetch buffer or run (FI-09).

Every held delivery has a local deadline: the time its receive started plus the
queue's visibility timeout, which is never later than the backend's own. The keeper
extends a lease once a third of it is used. When the backend says the lease is lost,
or the deadline comes within `margin` without a confirmed extension, the delivery is
marked lost and its handler is cancelled: somebody else may now hold the message, and
one delivery must never run twice at the same time. After the event loop was blocked
(ticks late), a lease past its deadline is not given up unasked: the keeper asks the
backend to extend it, and gives it up only if the backend says it is lost (or does not
answer within `STALL_GRACE_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from conveyor.queues.base import Delivery, QueueBackend
from conveyor.queues.headers import escape
from conveyor.queues.model import Queue

log = logging.getLogger("conveyor.worker")

#: Ticks this much later than due mean the event loop was blocked.
STALL_S = 1.0
#: After a blocked loop, how long a lease past its deadline waits for the backend to
#: say whether it still holds.
STALL_GRACE_S = 5.0


@dataclass(eq=False)
class Held:
    """A delivery this worker holds, from receipt to settlement."""

    delivery: Delivery
    backend: QueueBackend
    queue: Queue
    #: `time.monotonic()` after which the backend may hand the message to someone else.
    lease_until: float
    handler: asyncio.Future[object] | None = None
    #: The name of the handler running it, once it runs.
    handler_name: str | None = None
    lost: bool = False
    #: Cancelled by a forced shutdown (retried), not by a lost lease.
    interrupted: bool = False
    _extending: bool = field(default=False, repr=False)

    @property
    def visibility_s(self) -> float:
        return self.queue.options.visibility_timeout_s

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            if self.handler is not None and not self.handler.done():
                self.handler.cancel()


class LeaseKeeper:
    def __init__(self, tick_s: float) -> None:
        self.tick_s = tick_s
        self._held: set[Held] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_check = time.monotonic()

    @classmethod
    def for_queues(cls, queues: list[Queue]) -> LeaseKeeper:
        shortest = min(q.options.visibility_timeout_s for q in queues)
        return cls(tick_s=min(1.0, shortest / 6))

    def hold(self, held: Held) -> None:
        self._held.add(held)

    def drop(self, held: Held) -> None:
        self._held.discard(held)

    async def run(self) -> None:
        while True:
            self.check(time.monotonic())
            await asyncio.sleep(self.tick_s)

    def check(self, now: float) -> None:
        # Ticks far apart: the event loop was blocked (see `watchdog`), and no extension
        # could be sent. Whether a lease still holds is the backend's to say, then.
        stalled = now - self._last_check > self.tick_s * 3 + STALL_S
        self._last_check = now
        for held in list(self._held):
            if held.lost:
                continue
            vt = held.visibility_s
            if stalled and now >= held.lease_until - margin_s(vt):
                held.lease_until = now + margin_s(vt) + STALL_GRACE_S
                self._start_extending(held)
            elif now >= held.lease_until - margin_s(vt):
                log.warning(
                    "lease of message=%s ran out before it could be extended; giving it up",
                    escape(held.delivery.id),
                )
                held.lose()
            elif held.lease_until - now < vt * 2 / 3:
                self._start_extending(held)

    def _start_extending(self, held: Held) -> None:
        if held._extending:
            return
        held._extending = True
        task = asyncio.create_task(self._extend(held))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _extend(self, held: Held) -> None:
        sent = time.monotonic()
        try:
            extended = await held.backend.extend_lease(held.delivery, seconds=held.visibility_s)
        except Exception as exc:
            log.warning(
                "could not extend the lease of message=%s: %s", escape(held.delivery.id), exc
            )
            return
        finally:
            held._extending = False
        if extended:
            held.lease_until = max(held.lease_until, sent + held.visibility_s)
        elif held in self._held:
            log.warning(
                "lost the lease of message=%s; cancelling its handler", escape(held.delivery.id)
            )
            held.lose()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def margin_s(visibility_s: float) -> float:
    """Give a lease up this long before its deadline: clocks and round trips vary."""
    return min(1.0, visibility_s * 0.1)
