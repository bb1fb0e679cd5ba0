"""A backend that fails for a while (broker or database down) never crashes the
worker: it keeps trying, with pauses, and carries on when the backend is back."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import Context, handler
from conveyor.exceptions import BackendError, ConnectionFailed
from conveyor.platform import Platform
from conveyor.queues.base import Delivery, QueueBackend
from conveyor.queues.model import Queue
from conveyor.worker.handlers import HandlerRegistry
from tests.worker.conftest import NewQueue
from tests.worker.helpers import eventually, running, settled


class Outage:
    """Wraps a real backend; its first calls fail as if the backend were down."""

    def __init__(self, inner: QueueBackend, *, receives: int, acks: int) -> None:
        self.inner = inner
        self.queue = inner.queue
        self.receives, self.acks = receives, acks

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def receive(self, max_messages: int, *, wait_s: float = 0) -> list[Delivery]:
        if self.receives:
            self.receives -= 1
            raise BackendError("the queue backend is unavailable")
        return await self.inner.receive(max_messages, wait_s=wait_s)

    async def ack(self, delivery: Delivery) -> bool:
        if self.acks:
            self.acks -= 1
            raise ConnectionError("connection reset")
        return await self.inner.ack(delivery)


@pytest.mark.every_backend
async def test_the_worker_rides_out_a_backend_outage(
    platform: Platform, worker_queue: NewQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await worker_queue()
    for i in range(5):
        await platform.publisher.publish_object(queue, {"handler": "n", "n": i})
    real_connect = platform.backends.connect
    refusals = [ConnectionFailed("could not connect"), ConnectionFailed("could not connect")]
    opened: list[Outage] = []

    async def connect(target: Queue) -> QueueBackend:
        if refusals:
            raise refusals.pop()
        first = not opened
        backend = Outage(await real_connect(target), receives=3 if first else 0, acks=2)
        opened.append(backend)
        return backend  # type: ignore[return-value]

    monkeypatch.setattr(platform.backends, "connect", connect)
    handled: list[int] = []

    @handler("n", auto_ack=True)
    async def n(context: Context) -> None:
        handled.append(context.message.payload["n"])

    async with running(platform, queue, HandlerRegistry([n])) as worker:
        await eventually(
            lambda: settled(platform, queue, worker, acked=5), timeout_s=30, what="all acked"
        )
    assert sorted(handled) == [0, 1, 2, 3, 4]
    assert worker.counters.acked == 5 and refusals == []
    # three failed receives in a row: the worker opened a fresh backend
    assert len(opened) == 2
