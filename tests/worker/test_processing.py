"""The worker end to end: throughput and parallelism, retry with backoff, dead letters."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from conveyor import Context, handler
from conveyor.platform import Platform
from conveyor.worker.handlers import HandlerRegistry
from tests.conftest import bearer
from tests.worker.conftest import NewQueue
from tests.worker.helpers import (
    MaxJitter,
    Recorder,
    drained,
    eventually,
    publish_api,
    running,
    settled,
    stats,
)


@pytest.mark.every_backend
async def test_every_message_published_through_the_api_is_processed_at_full_parallelism(
    platform: Platform, client: httpx.AsyncClient, worker_queue: NewQueue
) -> None:
    # Given 200 messages published through the API, and a handler that takes a while
    queue = await worker_queue(visibility_timeout_s=30)
    headers = await bearer(platform, "publish")
    payloads = [{"handler": "work", "n": n} for n in range(200)]
    ids = await publish_api(client, headers, queue, payloads)
    record = Recorder()

    @handler("work")
    async def work(context: Context) -> None:
        start = record.enter()
        await asyncio.sleep(0.02)
        record.leave(context.message.id, context.message.attempt, start)
        context.runtime.ack_message()

    # When a worker with concurrency 10 drains them
    held: list[int] = []
    async with running(platform, queue, HandlerRegistry([work]), concurrency=10, prefetch=5):

        async def done() -> bool:
            now = await stats(platform, queue)
            held.append(now.in_flight or 0)
            return len(record.executions) >= 200 and await drained(platform, queue)

        await eventually(done, timeout_s=50, what="all 200 processed")

    # Then each was processed once, 10 ran at once and never more, prefetch stayed bounded
    assert sorted(record.handled()) == sorted(ids)
    assert record.peak == 10
    assert max(held) <= 15


@pytest.mark.every_backend
async def test_a_failing_handler_is_retried_with_backoff_until_it_succeeds(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue(retry_backoff_s=0.3, retry_backoff_max_s=10, max_attempts=5)
    record = Recorder()

    @handler("flaky", auto_ack=True)
    async def flaky(context: Context) -> None:
        start = record.enter()
        record.leave("flaky", context.message.attempt, start)
        if context.message.attempt < 3:
            raise ConnectionError(f"upstream down (attempt {context.message.attempt})")

    await platform.publisher.publish_object(queue, {"handler": "flaky"})
    async with running(platform, queue, HandlerRegistry([flaky]), rng=MaxJitter()) as worker:
        await eventually(lambda: settled(platform, queue, worker, acked=1), what="acked")

    first, second, third = record.of("flaky")
    assert [first.attempt, second.attempt, third.attempt] == [1, 2, 3]
    # Backoff doubles: the cap is 0.3 s after attempt 1 and 0.6 s after attempt 2.
    assert second.start - first.end >= 0.3
    assert third.start - second.end >= 0.6
    assert (worker.counters.acked, worker.counters.retried, worker.counters.failed) == (1, 2, 2)


@pytest.mark.every_backend
async def test_an_always_failing_handler_is_dead_lettered_then_redriven(
    platform: Platform, client: httpx.AsyncClient, admin: dict[str, str], worker_queue: NewQueue
) -> None:
    queue = await worker_queue(max_attempts=3, retry_backoff_s=0.05, retry_backoff_max_s=0.2)
    healthy = asyncio.Event()
    attempts: list[int] = []

    @handler("charge")
    async def charge(context: Context) -> None:
        attempts.append(context.message.attempt)
        if not healthy.is_set():
            raise ValueError("card declined")
        context.runtime.ack_message()

    sent = await platform.publisher.publish_object(queue, {"handler": "charge", "amount": 12})
    base = f"/api/v1/zstorage/queues/{queue.id}"
    async with running(platform, queue, HandlerRegistry([charge])) as worker:

        async def one_dead() -> bool:
            return (await client.get(f"{base}/stats", headers=admin)).json()["dead"] == 1

        await eventually(one_dead, what="the message dead-lettered")
        assert attempts == [1, 2, 3]
        (letter,) = (await client.get(f"{base}/dead-letters", headers=admin)).json()["items"]
        assert letter["message_id"] == sent["message-id"]
        assert letter["attempts"] == 3
        assert letter["payload"] == {"handler": "charge", "amount": 12}
        assert "gave up after 3 attempt(s)" in letter["last_error"]
        assert "ValueError: card declined" in letter["last_error"]

        # When the cause is fixed and the dead letter is redriven
        healthy.set()
        moved = await client.post(f"{base}/dead-letters/redrive", json={}, headers=admin)
        assert moved.json() == {"count": 1}
        await eventually(
            lambda: settled(platform, queue, worker, acked=1), what="the redriven message acked"
        )
    assert attempts == [1, 2, 3, 1]


@pytest.mark.every_backend
async def test_a_worker_serves_several_queues(platform: Platform, worker_queue: NewQueue) -> None:
    first, second = await worker_queue(), await worker_queue()
    seen: list[str] = []

    @handler("note", auto_ack=True)
    async def note(context: Context) -> None:
        seen.append(context.message.queue)

    for queue in (first, second, second):
        await platform.publisher.publish_object(queue, {"handler": "note"})
    async with running(platform, [first, second], HandlerRegistry([note]), concurrency=2):
        await eventually(lambda: len(seen) == 3, what="3 messages handled")
    assert sorted(seen) == sorted([first.name, second.name, second.name])
