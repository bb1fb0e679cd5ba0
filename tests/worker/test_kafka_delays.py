"""Kafka: a record delayed far into the future (issue 28, item 2) neither holds back
the commits of the records after it nor makes a restarted worker run them again."""

from __future__ import annotations

import pytest

from conveyor import Context, handler
from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage, now_ms
from conveyor.queues.kafka import ledger
from conveyor.queues.kafka.backend import KafkaBackend
from conveyor.queues.model import Queue
from conveyor.worker.handlers import HandlerRegistry
from tests.worker.conftest import NewQueue, only
from tests.worker.helpers import Recorder, eventually, running, stats

YEAR_MS = 365 * 24 * 3600 * 1000


async def _uncommitted(platform: Platform, queue: Queue) -> int:
    """Records of the queue's topic its group has not committed past."""
    backend = await platform.backends.get(queue)
    assert isinstance(backend, KafkaBackend)
    topic, cluster = backend.config.topic, backend.cluster
    partitions = (await cluster.topics())[topic]
    return await cluster.lag(backend.config.group, topic, partitions)


async def _all_committed(platform: Platform, queue: Queue) -> bool:
    return await _uncommitted(platform, queue) == 0


@only("kafka")
@pytest.mark.parametrize("park_after_s", [1.0, None], ids=["while-running", "on-stop"])
async def test_a_far_future_delay_holds_back_no_commit(
    platform: Platform,
    worker_queue: NewQueue,
    monkeypatch: pytest.MonkeyPatch,
    park_after_s: float | None,
) -> None:
    if park_after_s is not None:
        monkeypatch.setattr(ledger, "PARK_AFTER_S", park_after_s, raising=False)
    queue = await worker_queue()
    backend = await platform.backends.get(queue)
    # Given, in one partition, a record not to run before 10 years from now
    far = str(now_ms() + 10 * YEAR_MS)
    delayed = OutgoingMessage(
        body=b'{"handler": "n", "n": -1}', headers={"conveyor-not-before": far}, ordering_key="k"
    )
    await backend.publish(delayed)
    # and 20 records after it
    for n in range(20):
        await backend.publish(
            OutgoingMessage(body=b'{"handler": "n", "n": %d}' % n, ordering_key="k")
        )
    record = Recorder()

    @handler("n", auto_ack=True)
    async def n(context: Context) -> None:
        start = record.enter()
        record.leave(context.message.payload["n"], context.message.attempt, start)

    # When a worker runs the 20: their commits move on while the first one waits (after
    # PARK_AFTER_S, or when the worker stops)
    async with running(platform, queue, HandlerRegistry([n])) as worker:
        await eventually(lambda: worker.counters.acked == 20, what="20 acked")
        if park_after_s is not None:
            await eventually(lambda: _all_committed(platform, queue), what="all committed")
        # (the consuming process shows it as delayed)
        assert (await worker._backends[0].stats()).delayed == 1
    # and a worker that restarts runs none of them again; the delayed one still waits
    # (the stats show it: 1 to come in a process that does not consume)
    assert await _uncommitted(platform, queue) == 0
    assert (await stats(platform, queue)).ready == 1
    async with running(platform, queue, HandlerRegistry([n])) as again:
        again_backend = again._backends
        await eventually(lambda: len(again_backend) == 1, what="the new worker connected")

        async def waiting() -> bool:
            now = await again_backend[0].stats()
            return now.delayed == 1 and now.ready == 0

        await eventually(waiting, timeout_s=30, what="the delayed record read again")
    assert sorted(record.handled()) == list(range(20))
