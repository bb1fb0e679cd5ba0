from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor.platform import Platform
from conveyor.queues.base import QueueBackend
from tests.contract.queue_contract import NewBackend, QueueContract


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
