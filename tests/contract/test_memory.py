"""The in-memory backend passes the queue contract: no server, no database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor.queues.base import QueueBackend
from conveyor.queues.memory import LEASE_EXPIRED_ERROR, memory_backend
from tests.contract.queue_contract import (
    NewBackend,
    QueueContract,
    message,
    nothing_within,
    receive,
)


class TestMemory(QueueContract):
    @pytest.fixture
    async def new_backend(self) -> AsyncIterator[NewBackend]:
        opened: list[QueueBackend] = []

        async def make(**options: Any) -> QueueBackend:
            backend = memory_backend(f"memory-{len(opened)}", **options)
            await backend.open()
            opened.append(backend)
            return backend

        yield make
        for backend in opened:
            await backend.close()

    async def test_a_message_whose_every_lease_expires_is_dead_lettered(
        self, new_backend: NewBackend
    ) -> None:
        backend = await new_backend(visibility_timeout_s=1, max_attempts=2)
        await backend.publish(message())
        (first,) = await receive(backend, 1)
        (again,) = await receive(backend, 1, timeout_s=10)
        assert (again.id, again.attempt) == (first.id, 2)
        await nothing_within(backend, 1.5)
        (letter,) = (await backend.dead_letters(limit=5)).items
        assert letter.attempts == 2 and letter.last_error == LEASE_EXPIRED_ERROR

    async def test_a_closed_queue_refuses_to_publish(self, new_backend: NewBackend) -> None:
        backend = await new_backend()
        await backend.close()
        assert not (await backend.check()).ok
        with pytest.raises(Exception, match="closed"):
            await backend.publish(message())
