"""The queue registry's look-up cache."""

from __future__ import annotations

from conveyor.platform import Platform
from conveyor.queues.model import Queue
from conveyor.queues.registry import QueueRegistry


async def test_a_queue_changed_elsewhere_is_seen_once_the_entry_expires(
    platform: Platform,
) -> None:
    queue = await platform.queues.create({"name": "orders", "type": "embedded"})
    now = [0.0]
    other = QueueRegistry(platform.db, platform.queues._box, cache_ttl_s=2.0)
    other._cache._clock = lambda: now[0]
    found: Queue = await other.get(queue.id)
    assert found.id == queue.id
    await platform.queues.update(queue.id, {"description": "changed"})
    now[0] = 1.9
    assert (await other.get(queue.id)).description != "changed"
    now[0] = 2.0
    assert (await other.get(queue.id)).description == "changed"
