"""FI-09 and timeouts: a handler that outlives the visibility timeout keeps its lease
(never two executions of one message at once); one that outlives its own timeout is
cancelled and retried."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import Context, handler
from conveyor.platform import Platform
from conveyor.worker.handlers import HandlerRegistry
from tests.worker.conftest import NewQueue
from tests.worker.helpers import Recorder, drained, eventually, running, settled


@pytest.mark.every_backend
async def test_a_handler_outliving_the_visibility_timeout_never_runs_twice_at_once(
    platform: Platform, worker_queue: NewQueue
) -> None:
    # Given handlers that take more than twice the visibility timeout
    queue = await worker_queue(visibility_timeout_s=1.5)
    record = Recorder()

    @handler("slow", auto_ack=True, timeout_s=30)
    async def slow(context: Context) -> None:
        start = record.enter()
        await asyncio.sleep(3.2)
        record.leave(context.message.payload["n"], context.message.attempt, start)

    for n in range(4):
        await platform.publisher.publish_object(queue, {"handler": "slow", "n": n})

    # When two workers compete for them
    registry = HandlerRegistry([slow])
    async with (
        running(platform, queue, registry, concurrency=2, prefetch=2) as first,
        running(platform, queue, registry, concurrency=2, prefetch=2) as second,
    ):
        await eventually(
            lambda: settled(platform, queue, first, second, acked=4), timeout_s=40, what="all acked"
        )

    # Then each message ran exactly once: the leases were extended, never lost
    assert sorted(record.handled()) == [0, 1, 2, 3]
    assert all(e.attempt == 1 for e in record.executions)
    assert first.counters.lease_lost == second.counters.lease_lost == 0
    assert first.counters.acked + second.counters.acked == 4


@pytest.mark.every_backend
async def test_a_handler_over_its_timeout_is_cancelled_and_retried(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue(max_attempts=2, retry_backoff_s=0, retry_backoff_max_s=0)
    cancelled: list[int] = []

    @handler("stuck", auto_ack=True, timeout_s=0.3)
    async def stuck(context: Context) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(context.message.attempt)
            raise

    sent = await platform.publisher.publish_object(queue, {"handler": "stuck"})
    async with running(platform, queue, HandlerRegistry([stuck])) as worker:
        await eventually(lambda: drained(platform, queue, dead=1), what="dead-lettered")
    assert cancelled == [1, 2]
    (letter,) = (await (await platform.backends.get(queue)).dead_letters(limit=5)).items
    assert letter.message_id == sent["message-id"]
    assert "timed out after 0.3 s" in (letter.last_error or "")
    assert worker.counters.failed == 2


@pytest.mark.every_backend
async def test_the_default_timeout_is_the_visibility_timeout(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue(visibility_timeout_s=1, max_attempts=1)

    @handler("forever", auto_ack=True)
    async def forever(context: Context) -> None:
        await asyncio.sleep(30)

    await platform.publisher.publish_object(queue, {"handler": "forever"})
    async with running(platform, queue, HandlerRegistry([forever])):
        await eventually(lambda: drained(platform, queue, dead=1), what="timed out")
    (letter,) = (await (await platform.backends.get(queue)).dead_letters(limit=5)).items
    assert "timed out after 1 s" in (letter.last_error or "")


async def test_a_plain_handler_over_its_timeout_keeps_its_lease_until_its_thread_returns(
    platform: Platform, worker_queue: NewQueue
) -> None:
    # Threads cannot be cancelled: the message must not run again while one still runs.
    queue = await worker_queue(visibility_timeout_s=1, retry_backoff_s=0, retry_backoff_max_s=0)
    record = Recorder()

    @handler("blocking", timeout_s=0.3)
    def blocking(context: Context) -> None:
        start = record.enter()
        import time

        time.sleep(1.5 if context.message.attempt == 1 else 0)
        record.leave("blocking", context.message.attempt, start)
        context.runtime.ack_message()

    await platform.publisher.publish_object(queue, {"handler": "blocking"})
    async with running(platform, queue, HandlerRegistry([blocking]), concurrency=4):
        await eventually(lambda: drained(platform, queue), what="acked on the 2nd attempt")
    first, second = record.of("blocking")
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.start >= first.end  # never overlapping
    assert record.peak == 1
