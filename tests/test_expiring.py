"""The look-up cache of API keys and queues."""

from __future__ import annotations

from conveyor.expiring import ExpiringCache


def test_an_entry_lives_for_its_ttl_and_a_none_value_is_an_entry() -> None:
    now = [0.0]
    cache: ExpiringCache[str, int | None] = ExpiringCache(2.0, clock=lambda: now[0])
    assert cache.lookup("a") is None
    cache.put("a", None)
    cache.put("b", 7)
    assert cache.lookup("a") == (None,)
    now[0] = 1.99
    assert cache.lookup("b") == (7,)
    now[0] = 2.0
    assert cache.lookup("a") is None and cache.lookup("b") is None
    cache.put("b", 8)
    cache.pop("b")
    assert cache.lookup("b") is None


def test_a_full_cache_sweeps_expired_entries_then_starts_over() -> None:
    now = [0.0]
    cache: ExpiringCache[int, int] = ExpiringCache(1.0, maxsize=4, clock=lambda: now[0])
    for key in range(3):
        cache.put(key, key)
    now[0] = 0.5
    cache.put(3, 3)
    now[0] = 1.2  # 0, 1, 2 expired; 3 lives
    cache.put(4, 4)
    assert len(cache) == 2 and cache.lookup(3) == (3,) and cache.lookup(4) == (4,)
    for key in range(10, 12):
        cache.put(key, key)
    cache.put(99, 99)  # full of live entries (a flood of unknown keys): starts over
    assert len(cache) == 1 and cache.lookup(99) == (99,)
