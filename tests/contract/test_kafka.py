from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor.queues.kafka import KafkaBackend
from conveyor.queues.model import Credentials
from tests.contract.queue_contract import NewBackend, QueueContract
from tests.kafka.support import delete_topics, fresh_name, kafka_queue, require_kafka

pytestmark = pytest.mark.kafka


class TestKafka(QueueContract):
    """Each test gets a topic of its own (with its retry and dead-letter topics)."""

    @pytest.fixture
    async def new_backend(self) -> AsyncIterator[NewBackend]:
        require_kafka()
        opened: list[KafkaBackend] = []

        async def make(**options: Any) -> KafkaBackend:
            queue = kafka_queue(fresh_name("contract"), create_if_missing=True, **options)
            backend = KafkaBackend(queue, Credentials(None, None))
            await backend.open()
            opened.append(backend)
            return backend

        yield make
        for backend in opened:
            await backend.close()
        delete_topics(*(backend.queue.name for backend in opened))
