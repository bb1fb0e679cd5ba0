"""Which offsets may be committed: only up to the first unsettled record of a partition.

Handlers run in parallel and finish in any order. Committing the offset of a finished
record while an earlier one still runs would lose the earlier one if the worker died,
so each partition commits its contiguous watermark: the offset of its first record not
yet settled (or one past the last record received, when all are settled).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

#: (topic, partition)
Partition = tuple[str, int]


@dataclass
class _Track:
    received: deque[int] = field(default_factory=deque)
    settled: set[int] = field(default_factory=set)
    #: One past the last offset received.
    next_offset: int | None = None
    #: The position last handed to a commit, to avoid committing it again.
    sent: int | None = None

    def position(self) -> int | None:
        while self.received and self.received[0] in self.settled:
            self.settled.discard(self.received.popleft())
        return self.received[0] if self.received else self.next_offset


class OffsetTracker:
    """Per-partition settled offsets and their commit positions. Not thread-safe."""

    def __init__(self) -> None:
        self._tracks: dict[Partition, _Track] = {}

    def received(self, partition: Partition, offset: int) -> bool:
        """Note a record handed over by the consumer; False if it was seen already."""
        track = self._tracks.setdefault(partition, _Track())
        if track.next_offset is not None and offset < track.next_offset:
            return False
        track.received.append(offset)
        track.next_offset = offset + 1
        return True

    def settle(self, partition: Partition, offset: int) -> None:
        track = self._tracks.get(partition)
        if track is not None and track.next_offset is not None and offset < track.next_offset:
            track.settled.add(offset)

    def position(self, partition: Partition) -> int | None:
        """The offset to commit for `partition`: where a new owner would start reading."""
        track = self._tracks.get(partition)
        return track.position() if track is not None else None

    def to_commit(self, partitions: set[Partition] | None = None) -> dict[Partition, int]:
        """Positions that moved since they were last sent, and mark them sent."""
        moved: dict[Partition, int] = {}
        for key, track in self._tracks.items():
            if partitions is not None and key not in partitions:
                continue
            position = track.position()
            if position is not None and position != track.sent:
                moved[key] = track.sent = position
        return moved

    def unsent(self, partition: Partition, position: int) -> None:
        """A commit failed: send this position again next time."""
        track = self._tracks.get(partition)
        if track is not None and track.sent == position:
            track.sent = None

    def forget(self, partitions: set[Partition]) -> None:
        """The partitions moved to another consumer: their records are no longer ours."""
        for key in partitions:
            self._tracks.pop(key, None)

    def waiting(self, partition: Partition) -> bool:
        """Are records of `partition` settled but held back by an earlier one?"""
        track = self._tracks.get(partition)
        if track is None:
            return False
        track.position()  # drops the settled prefix
        return bool(track.settled)

    def held(self) -> int:
        """Records settled but not committable yet (an earlier one is still open)."""
        held = 0
        for track in self._tracks.values():
            track.position()  # drops the settled prefix
            held += len(track.settled)
        return held
