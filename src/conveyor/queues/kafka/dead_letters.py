"""Dead letters in the `<topic>.dlq` topic, and how they are listed, redriven, deleted.

Kafka cannot delete one record. A dead letter that was redriven or deleted is marked
by a small record in the same partition of the dead-letter topic (header
`conveyor-removes: <id>`); a consumer group of its own (`<group>.dlq`, never joined)
commits past every prefix of letters that are all gone, so what is scanned stays
small. A letter's id is its `partition:offset` in the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.exceptions import BadRequest
from conveyor.queues import base
from conveyor.queues import headers as parse
from conveyor.queues.base import DeadLetter, DeadLetterPage
from conveyor.queues.kafka.cluster import Cluster, Offsets
from conveyor.queues.kafka.config import KafkaConfig
from conveyor.queues.kafka.producer import AsyncProducer, Outgoing
from conveyor.queues.kafka.records import (
    HEADER_DEAD_AT,
    HEADER_DELIVERIES,
    HEADER_LAST_ERROR,
    HEADER_NOT_BEFORE,
    HEADER_ORIGIN,
    HEADER_REMOVES,
    Record,
)

#: Attempts shown for a dead letter, at most (the largest `max_attempts` there is).
MAX_ATTEMPTS = 1000
#: Above this many records to scan, `count` answers the span (an upper bound).
COUNT_SCAN_LIMIT = 10_000


@dataclass(frozen=True)
class _Scan:
    starts: Offsets
    ends: Offsets
    records: list[Record]

    @property
    def letters(self) -> list[Record]:
        removed = {r.headers[HEADER_REMOVES] for r in self.records if HEADER_REMOVES in r.headers}
        live = [
            r
            for r in self.records
            if HEADER_REMOVES not in r.headers
            and r.position not in removed
            and r.offset < self.ends.get(r.partition, 0)
        ]
        return sorted(live, key=lambda r: (r.partition, r.offset))

    def compacted(self) -> Offsets:
        """Per partition, the new start when its first records are all gone."""
        first_live: Offsets = {}
        for letter in self.letters:
            first_live.setdefault(letter.partition, letter.offset)
        moved = {}
        for partition, start in self.starts.items():
            position = first_live.get(partition, self.ends.get(partition, start))
            if position > start:
                moved[partition] = position
        return moved


class DeadLetters:
    def __init__(self, config: KafkaConfig, cluster: Cluster, producer: AsyncProducer) -> None:
        self._config = config
        self._topic = config.dlq_topic
        self._cluster = cluster
        self._producer = producer

    async def bury(self, record: Record, attempt: int, reason: str) -> None:
        headers = record.carried_headers(
            {
                HEADER_DELIVERIES: attempt,
                HEADER_LAST_ERROR: reason,
                HEADER_DEAD_AT: base.now_ms(),
                HEADER_ORIGIN: f"{record.topic}:{record.position}",
            },
            drop={HEADER_NOT_BEFORE},
        )
        await self._producer.send(Outgoing(self._topic, record.value, record.key, headers))

    async def count(self) -> int:
        partitions = await self._partitions()
        if not partitions:
            return 0
        starts = await self._starts(partitions)
        ends = await self._cluster.ends(self._topic, partitions)
        span = sum(max(ends.get(p, 0) - o, 0) for p, o in starts.items())
        if span > COUNT_SCAN_LIMIT:
            return span
        return len((await self._scan()).letters)

    async def page(self, limit: int, cursor: str | None) -> DeadLetterPage:
        letters = (await self._scan()).letters
        if cursor is not None:
            after = _position(cursor)
            letters = [r for r in letters if (r.partition, r.offset) > after]
        items = [_dead_letter(r) for r in letters[:limit]]
        return DeadLetterPage(items, items[-1].id if len(letters) > limit else None)

    async def redrive(self, ids: Sequence[str] | None) -> int:
        chosen = await self._chosen(ids)
        copies = [
            Outgoing(
                self._config.retry_topic,
                r.value,
                r.key,
                r.carried_headers(
                    {HEADER_DELIVERIES: 0},
                    drop={HEADER_NOT_BEFORE, HEADER_DEAD_AT, HEADER_ORIGIN},
                ),
            )
            for r in chosen
        ]
        await self._producer.send_all(copies)
        return await self._remove(chosen)

    async def delete(self, ids: Sequence[str]) -> int:
        return await self._remove(await self._chosen(ids))

    async def _chosen(self, ids: Sequence[str] | None) -> list[Record]:
        wanted = None if ids is None else {"{}:{}".format(*_position(i)) for i in ids}
        letters = (await self._scan()).letters
        return [r for r in letters if wanted is None or r.position in wanted]

    async def _remove(self, letters: list[Record]) -> int:
        markers = [
            Outgoing(
                self._topic,
                b"",
                headers=[(HEADER_REMOVES, r.position.encode())],
                partition=r.partition,
            )
            for r in letters
        ]
        await self._producer.send_all(markers)
        if letters:
            await self._scan()  # commits past the letters now gone
        return len(letters)

    async def _partitions(self) -> int:
        return (await self._cluster.topics()).get(self._topic, 0)

    async def _starts(self, partitions: int) -> Offsets:
        group, topic = self._config.dlq_group, self._topic
        committed = await self._cluster.committed(group, topic, partitions)
        if len(committed) < partitions:
            earliest = await self._cluster.starts(topic, partitions)
            committed = {**earliest, **committed}
        return committed

    async def _scan(self) -> _Scan:
        partitions = await self._partitions()
        if not partitions:
            return _Scan({}, {}, [])
        starts = await self._starts(partitions)
        records, ends = await self._cluster.read(self._topic, starts)
        scan = _Scan(starts, ends, records)
        moved = scan.compacted()
        if moved:
            await self._cluster.commit(self._config.dlq_group, self._topic, moved)
        return scan


def _position(value: str) -> tuple[int, int]:
    partition, _, offset = value.partition(":")
    if not (_digits(partition) and _digits(offset)):
        raise BadRequest(f"{value!r} is not a dead-letter id of this queue (partition:offset)")
    return int(partition), int(offset)


def _dead_letter(record: Record) -> DeadLetter:
    dead_at = parse.epoch_ms(
        record.headers.get(HEADER_DEAD_AT), header=HEADER_DEAD_AT, message_id=record.message_id
    )
    headers = {k: v for k, v in record.headers.items() if k != HEADER_DELIVERIES}
    return DeadLetter(
        id=record.position,
        message_id=record.message_id,
        body=record.value,
        headers=headers,
        attempts=record.deliveries(MAX_ATTEMPTS),
        last_error=record.headers.get(HEADER_LAST_ERROR),
        published_at_ms=record.published_at_ms,
        dead_at_ms=record.timestamp_ms if dead_at is None else dead_at,
    )


def _digits(text: str) -> bool:
    return parse.integer(text) is not None and not text.startswith("-")
