"""Running a worker inside the test, recording what handlers did, waiting for it."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from conveyor.platform import Platform
from conveyor.queues.base import QueueStats
from conveyor.queues.model import Queue
from conveyor.worker.handlers import HandlerRegistry
from conveyor.worker.runner import Worker, WorkerOptions


class MaxJitter(random.Random):
    """Draws the top of every jitter range, so backoff shows in timestamps."""

    def uniform(self, a: float, b: float) -> float:
        return b


@asynccontextmanager
async def running(
    platform: Platform,
    queues: Queue | list[Queue],
    registry: HandlerRegistry,
    *,
    rng: random.Random | None = None,
    **options: Any,
) -> AsyncIterator[Worker]:
    """A worker running in this event loop until the block ends (then stopped cleanly)."""
    worker = Worker(
        platform,
        queues if isinstance(queues, list) else [queues],
        registry,
        WorkerOptions(**{"shutdown_timeout_s": 10.0, "receive_wait_s": 0.25, **options}),
        rng=rng,
    )
    task = asyncio.create_task(worker.run())
    started = asyncio.create_task(worker.started.wait())
    await asyncio.wait({task, started}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert worker.started.is_set(), "the worker did not start within 15 s"
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 40)


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout_s: float = 20,
    what: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout_s} s")
        await asyncio.sleep(0.05)


async def stats(platform: Platform, queue: Queue) -> QueueStats:
    backend = await platform.backends.get(queue)
    return await backend.stats()


async def drained(platform: Platform, queue: Queue, *, dead: int = 0) -> bool:
    """Nothing left to handle, and `dead` dead letters (a count a backend cannot tell,
    None, is not held against it; the tests also check what the handlers saw)."""
    now = await stats(platform, queue)
    left = (now.ready, now.in_flight, now.delayed)
    return all(n in (0, None) for n in left) and now.dead in (dead, None)


async def settled(platform: Platform, queue: Queue, *workers: Worker, acked: int) -> bool:
    """`acked` messages acked by these workers, and the queue drained. The workers' own
    count matters on brokers that cannot tell what a consumer holds (AMQP, Kafka)."""
    return sum(w.counters.acked for w in workers) >= acked and await drained(platform, queue)


async def publish_api(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    queue: Queue,
    payloads: list[dict[str, Any]],
) -> list[str]:
    """Publish each payload with its own API call; the message ids, in order."""

    async def one(payload: dict[str, Any]) -> str:
        response = await client.post(
            f"/api/v1/zstorage/queue/a/{queue.name}/publish", json=payload, headers=headers
        )
        assert response.status_code == 200, response.text
        return str(response.json()["message-id"])

    ids: list[str] = []
    for start in range(0, len(payloads), 25):
        ids += await asyncio.gather(*(one(p) for p in payloads[start : start + 25]))
    return ids


@dataclass
class Execution:
    key: Any
    attempt: int
    start: float
    end: float
    thread: str = ""


@dataclass
class Recorder:
    """What handlers did, and how many ran at once."""

    executions: list[Execution] = field(default_factory=list)
    running: int = 0
    peak: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> float:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        return time.monotonic()

    def leave(self, key: Any, attempt: int, start: float) -> None:
        with self._lock:
            self.running -= 1
            thread = threading.current_thread().name
            self.executions.append(Execution(key, attempt, start, time.monotonic(), thread))

    def of(self, key: Any) -> list[Execution]:
        return sorted((e for e in self.executions if e.key == key), key=lambda e: e.start)

    def handled(self) -> list[Any]:
        return [e.key for e in self.executions]
