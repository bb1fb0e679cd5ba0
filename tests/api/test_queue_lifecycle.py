"""Issue 19 item 8: deleting or changing a queue closes its broker clients, in this
process at once and in every other process within seconds (through its registry cache)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.config import Settings
from conveyor.platform import Platform
from tests.kafka.support import BOOTSTRAP, FAST_GROUP, delete_topics, fresh_name, require_kafka

QUEUES = "/api/v1/zstorage/queues"
DEADLINE_S = 20.0


@pytest.fixture
async def other_process(settings: Settings, platform: Platform) -> AsyncIterator[Platform]:
    """A second platform on the same database: another `conveyor serve` process."""
    async with Platform(settings.model_copy(update={"relay_enabled": False})) as other:
        yield other


async def eventually_closed(platform: Platform, queue_id: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while queue_id in platform.backends.open_ids:
        assert time.monotonic() < deadline, "the other process still holds the queue's client"
        await asyncio.sleep(0.05)


async def test_another_process_drops_a_changed_queue_within_seconds(
    client: httpx.AsyncClient, admin: dict[str, str], other_process: Platform
) -> None:
    created = await client.post(QUEUES, headers=admin, json={"name": "jobs", "type": "embedded"})
    queue = await other_process.queues.get(created.json()["id"])
    await other_process.backends.get(queue)
    changed = await client.patch(
        f"{QUEUES}/{queue.id}", headers=admin, json={"options": {"max_attempts": 2}}
    )
    assert changed.status_code == 200, changed.text
    await eventually_closed(other_process, queue.id)
    reopened = await other_process.backends.get(await other_process.queues.get(queue.id))
    assert reopened.queue.options.max_attempts == 2


def _producer_threads() -> int:
    return sum(t.name == "conveyor-kafka-producer" for t in threading.enumerate())


@pytest.mark.kafka
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_deleted_kafka_queue_stops_connecting_in_every_process(
    client: httpx.AsyncClient, platform: Platform, admin: dict[str, str], other_process: Platform
) -> None:
    require_kafka()
    name = fresh_name("gone")
    spec = {
        "name": name,
        "type": "kafka",
        "url": f"kafka://{BOOTSTRAP}",
        "options": {**FAST_GROUP, "create_if_missing": True},
    }
    created = await client.post(QUEUES, headers=admin, json=spec)
    assert created.status_code == 201, created.text
    queue_id = created.json()["id"]
    try:
        before = _producer_threads()
        for process in (platform, other_process):
            await process.backends.get(await process.queues.get(queue_id))
        assert _producer_threads() == before + 2
        deleted = await client.delete(f"{QUEUES}/{queue_id}", headers=admin)
        assert deleted.status_code in (200, 204), deleted.text
        assert queue_id not in platform.backends.open_ids  # this process: at once
        await eventually_closed(other_process, queue_id)
        deadline = time.monotonic() + DEADLINE_S
        while _producer_threads() > before:
            assert time.monotonic() < deadline, "a Kafka producer still runs"
            await asyncio.sleep(0.05)
    finally:
        await platform.backends.close()
        await other_process.backends.close()
        delete_topics(name)
