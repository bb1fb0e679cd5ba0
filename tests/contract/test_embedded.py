from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor.platform import Platform
from conveyor.queues.base import QueueBackend
from conveyor.queues.embedded import LEASE_EXPIRED_ERROR
from tests.contract.queue_contract import (
    NewBackend,
    QueueContract,
    message,
    nothing_within,
    receive,
)


class TestEmbedded(QueueContract):
    """Runs on SQLite and on PostgreSQL through the `platform` fixture."""

    @pytest.fixture
    async def new_backend(self, platform: Platform) -> AsyncIterator[NewBackend]:
        opened: list[QueueBackend] = []

        async def make(**options: Any) -> QueueBackend:
            queue = await platform.queues.create(
                {"name": f"contract-{len(opened)}", "type": "embedded", "options": options}
            )
            backend = await platform.backends.connect(queue)
            opened.append(backend)
            return backend

        yield make
        for backend in opened:
            await backend.close()

    async def test_a_message_whose_every_lease_expires_is_dead_lettered(
        self, new_backend: NewBackend
    ) -> None:
        """A message that crashes its worker every time must not loop forever."""
        backend = await new_backend(visibility_timeout_s=1, max_attempts=2)
        for n in range(3):
            await backend.publish(message(n))
        first = await receive(backend, 3)
        for delivery in first[1:]:
            assert await backend.ack(delivery)
        # the first message's holder "crashes" twice: its lease expires, unsettled
        (again,) = await receive(backend, 1, timeout_s=10)
        assert (again.id, again.attempt) == (first[0].id, 2)
        await nothing_within(backend, 2.5)
        page = await backend.dead_letters(limit=5)
        (letter,) = page.items
        assert letter.message_id == first[0].id and letter.attempts == 2
        assert letter.last_error == LEASE_EXPIRED_ERROR
