"""Looking at the cluster without joining a group: topics, offsets, reading a topic.

The end of a partition is taken from a fetch (the broker's high watermark in its fetch
answer), not from ListOffsets alone: some Kafka-protocol brokers answer ListOffsets
with the start of the last record batch, which would under-count the lag.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from conveyor.exceptions import BackendError
from conveyor.queues.kafka.config import REQUEST_TIMEOUT_S, KafkaConfig
from conveyor.queues.kafka.errors import map_errors
from conveyor.queues.kafka.handles import weak_callback
from conveyor.queues.kafka.records import Record

#: Offsets by partition number, for one topic.
Offsets = dict[int, int]


class Cluster:
    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self._secret = config.password
        #: The most telling connection error librdkafka reported (a refused login first).
        self._last_error: KafkaError | None = None
        settings: dict[str, Any] = {**config.admin(), "error_cb": weak_callback(self._on_error)}
        with map_errors("cannot configure the Kafka client", secret=self._secret):
            self._admin = AdminClient(settings)
            self._reader = Consumer(config.reader(f"{config.group}.reader"))
        # The reader is used by one scan at a time.
        self._reading = threading.Lock()
        self._closed = False

    def _call(self, doing: str, fn: Any, *args: Any) -> Any:
        with map_errors(doing, secret=self._secret):
            return fn(*args)

    async def topics(self) -> dict[str, int]:
        """Topic name → partition count. Lists all topics: asking for one by name may
        make a broker with auto-creation create it."""

        def run() -> dict[str, int]:
            try:
                metadata = self._admin.list_topics(timeout=REQUEST_TIMEOUT_S)
            except KafkaException as exc:
                self._admin.poll(0)  # serves the error callbacks: why it failed
                if self._last_error is not None:
                    raise KafkaException(self._last_error) from exc
                raise
            return {name: len(t.partitions) for name, t in metadata.topics.items() if not t.error}

        where = f"cannot reach the Kafka cluster at {self._config.bootstrap}"
        result: dict[str, int] = await asyncio.to_thread(self._call, where, run)
        return result

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            return  # says less than the error that brought the brokers down
        current = self._last_error
        if current is None or current.code() != KafkaError._AUTHENTICATION:
            self._last_error = error

    async def create(self, topic: str, partitions: int) -> None:
        def run() -> None:
            futures = self._admin.create_topics(
                [NewTopic(topic, partitions, 1)], request_timeout=REQUEST_TIMEOUT_S
            )
            try:
                futures[topic].result(REQUEST_TIMEOUT_S * 2)
            except Exception as exc:
                error = exc.args[0] if exc.args else None
                if not (
                    isinstance(error, KafkaError)
                    and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    raise

        await asyncio.to_thread(self._call, f"cannot create the topic {topic!r}", run)

    async def delete(self, topics: list[str]) -> None:
        def run() -> None:
            for future in self._admin.delete_topics(
                topics, request_timeout=REQUEST_TIMEOUT_S
            ).values():
                future.result(REQUEST_TIMEOUT_S * 2)

        await asyncio.to_thread(self._call, "cannot delete topics", run)

    async def committed(self, group: str, topic: str, partitions: int) -> Offsets:
        """The group's committed offsets (partitions without one are left out)."""

        def run() -> Offsets:
            wanted = [TopicPartition(topic, p) for p in range(partitions)]
            request = [ConsumerGroupTopicPartitions(group, wanted)]
            futures = self._admin.list_consumer_group_offsets(
                request, request_timeout=REQUEST_TIMEOUT_S
            )
            answer = futures[group].result(REQUEST_TIMEOUT_S * 2)
            return {tp.partition: tp.offset for tp in answer.topic_partitions if tp.offset >= 0}

        doing = f"cannot read the offsets of group {group!r}"
        result: Offsets = await asyncio.to_thread(self._call, doing, run)
        return result

    async def commit(self, group: str, topic: str, offsets: Offsets) -> None:
        """Set a group's offsets; the group must have no live member (ours never do)."""

        def run() -> None:
            partitions = [TopicPartition(topic, p, o) for p, o in offsets.items()]
            request = [ConsumerGroupTopicPartitions(group, partitions)]
            futures = self._admin.alter_consumer_group_offsets(
                request, request_timeout=REQUEST_TIMEOUT_S
            )
            futures[group].result(REQUEST_TIMEOUT_S * 2)

        await asyncio.to_thread(self._call, f"cannot commit offsets of {group!r}", run)

    async def starts(self, topic: str, partitions: int) -> Offsets:
        """The first offset still stored, per partition."""

        def run() -> Offsets:
            return {
                p: self._reader.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=REQUEST_TIMEOUT_S
                )[0]
                for p in range(partitions)
            }

        result: Offsets = await asyncio.to_thread(self._call, f"cannot read {topic!r}", run)
        return result

    async def ends(self, topic: str, partitions: int) -> Offsets:
        """One past the last record, per partition."""
        _, ends = await self.read(topic, dict.fromkeys(range(partitions), OFFSET_END), keep=False)
        return ends

    async def lag(self, group: str, topic: str, partitions: int) -> int:
        """Records of `topic` the group has not committed past (from the oldest stored
        record where it has no offset yet)."""
        committed = await self.committed(group, topic, partitions)
        if len(committed) < partitions:
            committed = {**await self.starts(topic, partitions), **committed}
        ends = await self.ends(topic, partitions)
        return sum(max(end - committed.get(p, 0), 0) for p, end in ends.items())

    async def read(
        self, topic: str, starts: Offsets, *, keep: bool = True
    ) -> tuple[list[Record], Offsets]:
        """Every record from `starts` to the end of each partition, and those ends."""

        def run() -> tuple[list[Record], Offsets]:
            with self._reading:
                return self._read(topic, starts, keep)

        result: tuple[list[Record], Offsets] = await asyncio.to_thread(
            self._call, f"cannot read the topic {topic!r}", run
        )
        return result

    def _read(self, topic: str, starts: Offsets, keep: bool) -> tuple[list[Record], Offsets]:
        records: list[Record] = []
        ends: Offsets = {}
        deadline = time.monotonic() + REQUEST_TIMEOUT_S * 2
        self._reader.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        try:
            while len(ends) < len(starts):
                if time.monotonic() > deadline:
                    raise BackendError(f"reading the topic {topic!r} took too long")
                for message in self._reader.consume(500, 0.2):
                    error = message.error()
                    if error is None:
                        if keep:
                            records.append(Record.of(message))
                    elif error.code() == KafkaError._PARTITION_EOF:
                        ends[message.partition() or 0] = message.offset() or 0
                    else:
                        raise BackendError(f"reading the topic {topic!r} failed: {error.str()}")
        finally:
            self._reader.unassign()
        return records, ends

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def run() -> None:
            with self._reading:
                self._reader.close()
                # Freed here, in this thread (see conveyor.queues.kafka.handles).
                del self._reader, self._admin

        await asyncio.to_thread(self._call, "cannot close the Kafka reader", run)
