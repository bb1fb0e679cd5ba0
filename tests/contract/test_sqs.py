from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor.queues.base import QueueBackend
from conveyor.queues.sqs import SQSBackend
from tests.contract.queue_contract import NewBackend, QueueContract
from tests.sqs_support import (
    CREDENTIALS,
    drop_queues,
    raw_client,
    require_sqs,
    sqs_queue,
    unique_name,
)


@pytest.mark.sqs
class TestSQS(QueueContract):
    """The shared contract on a fresh SQS queue per backend (created by the backend)."""

    @pytest.fixture
    async def new_backend(self) -> AsyncIterator[NewBackend]:
        require_sqs()
        opened: list[QueueBackend] = []
        names: list[str] = []

        async def make(**options: Any) -> QueueBackend:
            name = unique_name("contract")
            names.append(name)
            backend = SQSBackend(sqs_queue(name, create_if_missing=True, **options), CREDENTIALS)
            await backend.open()
            opened.append(backend)
            return backend

        yield make
        for backend in opened:
            await backend.close()
        async with raw_client() as client:
            await drop_queues(client, *names)
