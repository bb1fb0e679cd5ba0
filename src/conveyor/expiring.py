"""A small time-limited cache for look-ups made on every request.

cachetools' `TTLCache` expires entries on every access, ~5 µs a look-up; the API key and
the queue are looked up on every publish. Here a look-up is a dict read and one clock
comparison; expired entries are swept only when the cache is full, and a cache still
full after the sweep (a flood of unknown keys) starts over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    def __init__(
        self, ttl_s: float, *, maxsize: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.maxsize = maxsize
        self._clock = clock
        self._entries: dict[K, tuple[V, float]] = {}

    def lookup(self, key: K) -> tuple[V] | None:
        """`(value,)` while the entry lives (the value may be None), else None."""
        entry = self._entries.get(key)
        if entry is None or entry[1] <= self._clock():
            return None
        return (entry[0],)

    def put(self, key: K, value: V) -> None:
        now = self._clock()
        if len(self._entries) >= self.maxsize:
            self._entries = {k: e for k, e in self._entries.items() if e[1] > now}
            if len(self._entries) >= self.maxsize:
                self._entries.clear()
        self._entries[key] = (value, now + self.ttl_s)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
