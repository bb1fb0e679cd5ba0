"""A Kafka broker that goes away: publishes fail fast (never a success), then recover."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conveyor.exceptions import BackendError
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.kafka import KafkaBackend
from conveyor.queues.model import Credentials
from tests.contract.queue_contract import receive
from tests.kafka.support import OwnBroker, create_topics, fresh_name, kafka_queue

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def broker() -> Iterator[OwnBroker]:
    own = OwnBroker()
    own.start()
    yield own
    own.kill()


@pytest.mark.timeout(120)
async def test_publishes_fail_while_the_broker_is_down_and_recover_after(
    broker: OwnBroker,
) -> None:
    name = fresh_name("restart")
    queue = kafka_queue(name, url=broker.bootstrap, create_if_missing=True, partitions=1)
    backend = KafkaBackend(queue, Credentials(None, None))
    await backend.open()
    try:
        await backend.publish(OutgoingMessage(body=b'{"n": 1}'))

        broker.kill()
        took = []
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(BackendError):
                await backend.publish(OutgoingMessage(body=b'{"n": 2}'))
            took.append(time.monotonic() - started)
        # The first waits for librdkafka's publish timeout; once the cluster is known to
        # be down, a publish only checks whether it is back.
        assert took[0] < 15 and max(took[1:]) < 6, took

        broker.start()
        # A real cluster keeps its topics; this memory-only broker must be given them
        # again, with as many partitions as the producer knows of.
        create_topics(broker.bootstrap, name, f"{name}.retry", f"{name}.dlq")
        deadline = time.monotonic() + 45
        sent = OutgoingMessage(body=b'{"n": 3}')
        while True:
            try:
                await backend.publish(sent)
                break
            except BackendError:
                assert time.monotonic() < deadline, "publishing did not recover"
        (delivery,) = await receive(backend, 1, timeout_s=30)
        assert delivery.id == sent.id
        assert await backend.ack(delivery)
    finally:
        await backend.close()
