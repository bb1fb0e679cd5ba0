"""The queue registry's look-up cache."""

from __future__ import annotations

from typing import Any

from cachetools import TTLCache

from conveyor.platform import Platform
from conveyor.queues.model import Queue


class ExpiresBetweenLookups(TTLCache[Any, Any]):
    """An entry that is there when asked about and gone when read: what a TTL cache
    shows when the entry's time runs out between the two."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)


async def test_an_entry_expiring_during_a_lookup_is_read_again(platform: Platform) -> None:
    queue = await platform.queues.create({"name": "orders", "type": "embedded"})
    platform.queues._cache = ExpiresBetweenLookups(10, 60)
    found: Queue = await platform.queues.find("orders")
    assert found.id == queue.id
    assert (await platform.queues.get(queue.id)).name == "orders"
