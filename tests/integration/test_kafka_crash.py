"""At-least-once on Kafka: a worker killed with unsettled messages loses none of them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor.queues.base import OutgoingMessage
from conveyor.queues.kafka import KafkaBackend
from conveyor.queues.model import Credentials
from tests.contract.queue_contract import nothing_within, receive
from tests.kafka.support import BOOTSTRAP, delete_topics, fresh_name, kafka_queue, require_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def name() -> AsyncIterator[str]:
    require_kafka()
    topic = fresh_name("crash")
    yield topic
    delete_topics(topic)


async def test_a_killed_worker_loses_nothing_it_had_not_settled(name: str) -> None:
    # Given one partition holding three messages
    backend = KafkaBackend(
        kafka_queue(name, create_if_missing=True, partitions=1), Credentials(None, None)
    )
    await backend.open()
    try:
        sent = [OutgoingMessage(body=b'{"n": %d}' % n) for n in range(3)]
        await backend.publish_batch(sent)

        # When a worker acks the 2nd and 3rd but not the 1st, and is killed with -9
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.kafka.crash_worker",
            name,
            BOOTSTRAP,
            "3",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert worker.stdout is not None
        try:
            line = await asyncio.wait_for(worker.stdout.readline(), 45)
        finally:
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
        assert line.startswith(b"READY "), line
        unacked = line.split()[1].decode()
        assert unacked == sent[0].id

        # Then the next member of the group gets the 1st again: nothing committed past it
        deliveries = await receive(backend, 3, timeout_s=40)
        assert sorted(d.id for d in deliveries) == sorted(m.id for m in sent)
        for delivery in deliveries:
            assert await backend.ack(delivery)
        await nothing_within(backend, 1)
    finally:
        await backend.close()

    # And once settled, a fresh member finds nothing left to do
    again = KafkaBackend(kafka_queue(name), Credentials(None, None))
    await again.open()
    try:
        await nothing_within(again, 5)
        assert (await again.stats()).ready == 0
    finally:
        await again.close()
