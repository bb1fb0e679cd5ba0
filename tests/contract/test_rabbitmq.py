from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor.queues.base import QueueBackend
from conveyor.queues.rabbitmq import RabbitMQBackend
from tests import rabbitmq
from tests.contract.queue_contract import NewBackend, QueueContract


@pytest.mark.rabbitmq
class TestRabbitMQ(QueueContract):
    """Each test on its own uniquely named queue, deleted afterwards."""

    @pytest.fixture
    async def new_backend(self) -> AsyncIterator[NewBackend]:
        rabbitmq.require()
        opened: list[QueueBackend] = []

        async def make(**options: Any) -> QueueBackend:
            queue, credentials = rabbitmq.queue_for(rabbitmq.unique_name("contract"), **options)
            backend = RabbitMQBackend(queue, credentials)
            await backend.open()
            opened.append(backend)
            return backend

        yield make
        for backend in opened:
            await backend.close()
            await rabbitmq.delete_queues(backend.queue.name)
