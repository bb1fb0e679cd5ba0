"""Worker tests run on every queue type listed in `QUEUE_TYPES`.

Adding a backend is one entry in `QUEUE_TYPES` (with its marker) and one in
`QUEUE_SPECS` (how to register such a queue for a test).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conveyor.platform import Platform
from conveyor.queues.model import Queue

#: Registration fields per queue type, besides the name and options.
QUEUE_SPECS: dict[str, Callable[[], dict[str, Any]]] = {
    "embedded": lambda: {"type": "embedded"},
}
QUEUE_TYPES = ["embedded"]

NewQueue = Callable[..., Awaitable[Queue]]


@pytest.fixture(params=QUEUE_TYPES)
def queue_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def worker_queue(platform: Platform, queue_type: str) -> NewQueue:
    """Registers a fresh queue of the type under test: `await worker_queue(**options)`."""

    async def make(**options: Any) -> Queue:
        name = f"w-{secrets.token_hex(4)}"
        return await platform.queues.create(
            {"name": name, **QUEUE_SPECS[queue_type](), "options": options}
        )

    return make
