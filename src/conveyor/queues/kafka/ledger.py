"""Leases over Kafka records, kept by the consuming process.

Kafka hands a partition to one consumer of a group; within that consumer, Conveyor
gives each record to one caller of `receive` at a time under a lease of the queue's
visibility timeout. A record whose lease runs out is handed out again (attempt + 1);
a settled record counts towards its partition's commit watermark (see `offsets`).
The consumer thread adds records and drops revoked partitions while the event loop
takes and settles them, so every method holds one lock.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from conveyor.queues import headers as parse
from conveyor.queues.kafka.offsets import OffsetTracker, Partition
from conveyor.queues.kafka.records import HEADER_NOT_BEFORE, Record

#: (topic, partition, offset)
RecordKey = tuple[str, int, int]
#: Longest delay a `conveyor-not-before` gets: a day (later times are capped to it).
MAX_DELAY_S = 24 * 3600
#: A delayed record holding back its partition's commits (a record after it is settled)
#: this long is written again, so that the commits move on (see `to_park`).
PARK_AFTER_S = 30.0


@dataclass(frozen=True)
class Receipt:
    """What a delivery needs to be settled: its record and the lease it was given."""

    key: RecordKey
    token: str

    @property
    def partition(self) -> Partition:
        return self.key[0], self.key[1]


@dataclass(frozen=True)
class Lease:
    record: Record
    attempt: int
    receipt: Receipt


@dataclass
class _Entry:
    record: Record
    #: Deliveries so far, including those before the record was (re)written.
    attempt: int
    visible_at: float
    #: When the consumer handed the record over (`clock()`).
    added_at: float = 0.0
    token: str | None = None
    version: int = 0


@dataclass(frozen=True)
class Parked:
    """A delayed record reserved to be written again (see `Ledger.to_park`)."""

    receipt: Receipt
    record: Record
    #: When it becomes due, epoch milliseconds (capped at `MAX_DELAY_S` from now).
    not_before_ms: int
    visible_at: float


@dataclass(frozen=True)
class Counts:
    visible: int
    leased: int
    delayed: int
    #: Settled, waiting for an earlier record of their partition before being committed.
    held: int


class Ledger:
    def __init__(
        self, *, max_attempts: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        #: Delivery counts read from headers are clamped below this (see `add`).
        self.max_attempts = max_attempts
        self.offsets = OffsetTracker()
        self._entries: dict[RecordKey, _Entry] = {}
        self._heap: list[tuple[float, int, RecordKey, int]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        #: Bytes of the record values held.
        self.held_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, records: Iterable[Record], *, now_ms: int) -> int:
        """Track records fresh from the consumer; returns how many were new."""
        added = 0
        with self._lock:
            now = self.clock()
            for record in records:
                if not self.offsets.received((record.topic, record.partition), record.offset):
                    continue
                delay_s = max(record.not_before_ms - now_ms, 0) / 1000
                if delay_s > MAX_DELAY_S:
                    parse.ignored(
                        HEADER_NOT_BEFORE,
                        record.not_before_ms,
                        record.message_id,
                        f"more than {MAX_DELAY_S} s ahead: capped to that",
                    )
                    delay_s = MAX_DELAY_S
                # A forged count must neither skip the attempts nor make them endless.
                deliveries = record.deliveries(self.max_attempts - 1)
                entry = _Entry(record, deliveries, now + delay_s, added_at=now)
                key = (record.topic, record.partition, record.offset)
                self._entries[key] = entry
                self._push(key, entry)
                self.held_bytes += len(record.value)
                added += 1
        return added

    def take(self, limit: int, lease_s: float) -> list[Lease]:
        """Up to `limit` visible records, each now leased for `lease_s`."""
        leases: list[Lease] = []
        with self._lock:
            now = self.clock()
            while self._heap and len(leases) < limit and self._heap[0][0] <= now:
                _, _, key, version = heapq.heappop(self._heap)
                entry = self._entries.get(key)
                if entry is None or entry.version != version:
                    continue  # stale: settled, extended or released since
                entry.attempt += 1
                entry.token = secrets.token_hex(8)
                self._reschedule(key, entry, now + lease_s)
                leases.append(Lease(entry.record, entry.attempt, Receipt(key, entry.token)))
        return leases

    def next_visible_at(self) -> float | None:
        with self._lock:
            while self._heap:
                _, _, key, version = self._heap[0]
                entry = self._entries.get(key)
                if entry is not None and entry.version == version:
                    return self._heap[0][0]
                heapq.heappop(self._heap)
        return None

    def settle(self, receipt: Receipt) -> Record | None:
        """Done with the record: forget it and let its offset be committed."""
        with self._lock:
            entry = self._owned(receipt)
            if entry is None:
                return None
            del self._entries[receipt.key]
            self.held_bytes -= len(entry.record.value)
            self.offsets.settle(receipt.partition, receipt.key[2])
            return entry.record

    def record(self, receipt: Receipt) -> Record | None:
        """The record under this lease, or None if the lease was lost."""
        with self._lock:
            entry = self._owned(receipt)
            return entry.record if entry is not None else None

    def extend(self, receipt: Receipt, seconds: float) -> bool:
        with self._lock:
            entry = self._owned(receipt)
            if entry is not None:
                self._reschedule(receipt.key, entry, self.clock() + seconds)
            return entry is not None

    def release(self, receipt: Receipt) -> bool:
        """Visible again at once, and this delivery not counted as an attempt."""
        with self._lock:
            entry = self._owned(receipt)
            if entry is not None:
                entry.attempt -= 1
                entry.token = None
                self._reschedule(receipt.key, entry, self.clock())
            return entry is not None

    def to_park(self, *, now_ms: int, held_s: float | None) -> list[Parked]:
        """Delayed records to write again (at the end of the retry topic) and then settle,
        so that they stop holding back their partitions' commits: those held at least
        `held_s` while a later record of their partition waits to be committed, or all
        of them (`held_s` None: the consumer is closing). Each is reserved: it is not
        handed out until `settle` or `unpark`."""
        parked: list[Parked] = []
        with self._lock:
            now = self.clock()
            for key, entry in self._entries.items():
                if entry.token is not None or entry.visible_at <= now + 1.0:
                    continue  # leased, or due soon: not worth a write
                if held_s is not None and (
                    now - entry.added_at < held_s or not self.offsets.waiting((key[0], key[1]))
                ):
                    continue
                not_before_ms = now_ms + int((entry.visible_at - now) * 1000)
                parked.append(
                    Parked(self._reserve(key, entry), entry.record, not_before_ms, entry.visible_at)
                )
        return parked

    def unpark(self, parked: Parked) -> None:
        """Writing it again failed: the record waits here as before."""
        with self._lock:
            entry = self._owned(parked.receipt)
            if entry is not None:
                entry.token = None
                self._reschedule(parked.receipt.key, entry, parked.visible_at)

    def _reserve(self, key: RecordKey, entry: _Entry) -> Receipt:
        entry.token = secrets.token_hex(8)
        self._reschedule(key, entry, float("inf"))
        return Receipt(key, entry.token)

    def leased_in(self, partitions: set[Partition]) -> int:
        """Records of these partitions that a handler holds right now."""
        with self._lock:
            now = self.clock()
            return sum(
                1
                for key, entry in self._entries.items()
                if (key[0], key[1]) in partitions and entry.token and entry.visible_at > now
            )

    def drop(self, partitions: set[Partition]) -> None:
        """The partitions went to another consumer: forget their records and leases."""
        with self._lock:
            for key in [k for k in self._entries if (k[0], k[1]) in partitions]:
                self.held_bytes -= len(self._entries.pop(key).record.value)
            self.offsets.forget(partitions)

    def to_commit(self, partitions: set[Partition] | None = None) -> dict[Partition, int]:
        with self._lock:
            return self.offsets.to_commit(partitions)

    def unsent(self, partition: Partition, position: int) -> None:
        with self._lock:
            self.offsets.unsent(partition, position)

    def counts(self) -> Counts:
        with self._lock:
            now = self.clock()
            visible = leased = delayed = 0
            for entry in self._entries.values():
                if entry.visible_at <= now:
                    visible += 1
                elif entry.token is not None:
                    leased += 1
                else:
                    delayed += 1
            return Counts(visible, leased, delayed, self.offsets.held())

    def _owned(self, receipt: Receipt) -> _Entry | None:
        entry = self._entries.get(receipt.key)
        return entry if entry is not None and entry.token == receipt.token else None

    def _reschedule(self, key: RecordKey, entry: _Entry, visible_at: float) -> None:
        entry.version += 1
        entry.visible_at = visible_at
        self._push(key, entry)

    def _push(self, key: RecordKey, entry: _Entry) -> None:
        heapq.heappush(self._heap, (entry.visible_at, next(self._order), key, entry.version))
