"""The Kafka backend: one registered queue = one topic, read by one consumer group.

What Kafka gives and what Conveyor adds on top of it:

- Publish: librdkafka's idempotent producer with `acks=all`; `publish` returns once
  the partition's in-sync replicas have the record. The backend id is `partition:offset`.
- Leases: Kafka has none. The consuming process hands each record to one `receive`
  caller at a time for the queue's visibility timeout; a record not settled in time
  is handed out again by that process (attempt + 1), and `extend_lease` / `release`
  act on that local lease. If the process dies, its offsets were never committed past
  the unsettled records, so the group's next owner of the partition reads them again
  (their attempt count restarts from the last copy written, see below).
- Ack: offsets are committed per partition up to the first record not yet settled,
  never past it (`offsets.py`), so parallel handlers finishing out of order lose
  nothing on a crash.
- Retry: a copy of the record (same message id, headers `conveyor-deliveries` and
  `conveyor-not-before`) is written to `<topic>.retry`, which the group also reads;
  the copy is handed out once its time has come. Then the original is settled.
- Delays: a record waiting for its `conveyor-not-before` (capped at a day ahead) holds
  back its partition's commits; when a later record of the partition is settled
  behind it for `PARK_AFTER_S`, and when the backend closes, it is written again at
  the end of the retry topic and settled, so a restart never runs settled records
  again (a crash may: those settled in the last `PARK_AFTER_S`).
- Dead letters: a copy goes to `<topic>.dlq`; see `dead_letters.py` for listing,
  redrive (back through `<topic>.retry`) and delete.
- Stats: `ready` is the group's lag over the topic and its retry topic, minus what
  this process holds leased, delayed or settled-but-not-committable; `in_flight` and
  `delayed` are known only in a process that consumes (None elsewhere); `dead` counts
  the dead-letter topic.
- The topic must exist unless the option `create_if_missing` is set; the retry and
  dead-letter topics are created when missing (if the cluster lets Conveyor).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from conveyor.exceptions import BackendError, ConveyorError
from conveyor.queues import base
from conveyor.queues.base import (
    CheckResult,
    DeadLetterPage,
    Delivery,
    OutgoingMessage,
    PublishResult,
    QueueBackend,
    QueueStats,
)
from conveyor.queues.kafka import ledger
from conveyor.queues.kafka.cluster import Cluster
from conveyor.queues.kafka.config import REQUEST_TIMEOUT_S, KafkaConfig
from conveyor.queues.kafka.consumer import GroupConsumer
from conveyor.queues.kafka.dead_letters import DeadLetters
from conveyor.queues.kafka.ledger import Lease, Ledger, Receipt
from conveyor.queues.kafka.producer import AsyncProducer, Outgoing
from conveyor.queues.kafka.records import (
    HEADER_DELIVERIES,
    HEADER_LAST_ERROR,
    HEADER_NOT_BEFORE,
    outgoing_headers,
)
from conveyor.queues.model import Credentials, Queue

LEASE_EXPIRED_ERROR = "the lease expired on every attempt (did the worker crash?)"
#: How often a receiving backend looks for delayed records to park.
PARK_CHECK_S = 1.0
log = logging.getLogger(__name__)


def _key(ordering_key: str | None) -> bytes | None:
    return ordering_key.encode() if ordering_key is not None else None


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """From another thread; a closed loop means nobody waits any more."""
    if not loop.is_closed():
        loop.call_soon_threadsafe(callback)


class KafkaBackend(QueueBackend):
    def __init__(self, queue: Queue, credentials: Credentials) -> None:
        self.queue = queue
        self.config = KafkaConfig.of(queue, credentials)
        self._secret = self.config.password
        self._ledger = Ledger(max_attempts=queue.options.max_attempts)
        self._wake = asyncio.Event()
        self._consumer: GroupConsumer | None = None
        self._producer: AsyncProducer | None = None
        self._cluster: Cluster | None = None
        self._dead: DeadLetters | None = None
        #: Why an auxiliary topic (retry, dead letters) is missing, if it is.
        self._missing_topic: str | None = None
        self._closed = False
        self._next_park_at = 0.0

    async def open(self) -> None:
        try:
            self._producer = AsyncProducer(self.config.producer(), secret=self._secret)
            self._cluster = Cluster(self.config)
            self._dead = DeadLetters(self.config, self._cluster, self._producer)
            await self._ensure_topics()
        except BaseException:
            await self.close()
            raise

    async def _ensure_topics(self) -> None:
        topics = await self.cluster.topics()
        partitions = topics.get(self.config.topic)
        if partitions is None:
            if not self.queue.options.create_if_missing:
                raise BackendError(
                    f"the Kafka topic {self.config.topic!r} does not exist: create it, "
                    "or set the queue option create_if_missing"
                )
            partitions = self.config.partitions
            await self.cluster.create(self.config.topic, partitions)
        needed = {self.config.retry_topic: partitions}
        if self.queue.options.dead_letter:
            needed[self.config.dlq_topic] = 1
        for topic, count in needed.items():
            if topic not in topics:
                try:
                    await self.cluster.create(topic, count)
                except BackendError as exc:
                    # Publishing does not need it; workers do (see `receive`).
                    self._missing_topic = (
                        f"{exc.message}. Workers need it for retries and dead letters: "
                        "create it, or allow Conveyor's user to create topics"
                    )

    @property
    def producer(self) -> AsyncProducer:
        if self._producer is None or self._closed:
            raise BackendError("this Kafka backend is closed")
        return self._producer

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None or self._closed:
            raise BackendError("this Kafka backend is closed")
        return self._cluster

    @property
    def dead(self) -> DeadLetters:
        if self._dead is None or self._closed:
            raise BackendError("this Kafka backend is closed")
        return self._dead

    async def close(self) -> None:
        if self._closed:
            return
        if self._consumer is not None and self._producer is not None:
            # Delayed records would hold back the commits of what was settled after
            # them, and a new member would run all that again.
            await self._park(held_s=None)
        self._closed = True
        consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None:
                await asyncio.to_thread(consumer.stop, REQUEST_TIMEOUT_S * 2)
            if self._producer is not None:
                await self._producer.close()
        finally:
            if self._cluster is not None:
                await self._cluster.close()

    # -- publishing ---------------------------------------------------------------

    async def publish(self, message: OutgoingMessage) -> PublishResult:
        record = Outgoing(
            self.config.topic, message.body, _key(message.ordering_key), outgoing_headers(message)
        )
        ((partition, offset),) = await self.producer.send_all([record])
        return PublishResult(message.id, f"{partition}:{offset}")

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        """Not atomic: Kafka without transactions may keep part of a failed batch."""
        topic = self.config.topic
        records = [
            Outgoing(topic, m.body, _key(m.ordering_key), outgoing_headers(m)) for m in messages
        ]
        positions = await self.producer.send_all(records)
        return [
            PublishResult(m.id, f"{partition}:{offset}")
            for m, (partition, offset) in zip(messages, positions, strict=True)
        ]

    # -- consuming ----------------------------------------------------------------

    def _consuming(self) -> None:
        consumer = self._consumer
        if consumer is not None and consumer.failure is not None:
            self._consumer = None  # the next receive starts a new member
            raise BackendError(f"the Kafka consumer stopped: {consumer.failure}")
        if consumer is not None:
            return
        if self._closed:
            raise BackendError("this Kafka backend is closed")
        loop = asyncio.get_running_loop()
        self._consumer = GroupConsumer(
            self.config.consumer(),
            [self.config.topic, self.config.retry_topic],
            self._ledger,
            lambda: _call_soon(loop, self._wake.set),
            secret=self._secret,
        )
        self._consumer.start()

    async def receive(self, max_messages: int, *, wait_s: float = 0) -> list[Delivery]:
        if self._missing_topic is not None:
            raise BackendError(self._missing_topic)
        self._consuming()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        lease_s = self.queue.options.visibility_timeout_s
        if loop.time() >= self._next_park_at:
            self._next_park_at = loop.time() + PARK_CHECK_S
            await self._park(held_s=ledger.PARK_AFTER_S)
        while True:
            self._wake.clear()
            deliveries = await self._deliveries(self._ledger.take(max_messages, lease_s))
            remaining = deadline - loop.time()
            if deliveries or remaining <= 0:
                return deliveries
            next_at = self._ledger.next_visible_at()
            timeout = min(remaining, 0.5)
            if next_at is not None:
                timeout = min(timeout, max(next_at - self._ledger.clock(), 0.001))
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _deliveries(self, leases: list[Lease]) -> list[Delivery]:
        deliveries = []
        for lease in leases:
            if lease.attempt > self.queue.options.max_attempts:
                # Every allowed delivery ended with its lease running out.
                await self._bury(lease.receipt, LEASE_EXPIRED_ERROR, attempt=lease.attempt - 1)
                continue
            record = lease.record
            deliveries.append(
                Delivery(
                    id=record.message_id,
                    body=record.value,
                    headers=record.visible_headers(lease.attempt),
                    attempt=lease.attempt,
                    published_at_ms=record.published_at_ms,
                    receipt=lease.receipt,
                    backend_id=f"{record.topic}:{record.position}",
                    ordering_key=record.ordering_key,
                )
            )
        return deliveries

    async def _park(self, *, held_s: float | None) -> None:
        """Write delayed records again at the end of the retry topic, then settle them:
        a delay never holds back the commits of the records after it for long."""
        parked = self._ledger.to_park(now_ms=base.now_ms(), held_s=held_s)
        if not parked:
            return
        copies = [
            Outgoing(
                self.config.retry_topic,
                p.record.value,
                p.record.key,
                p.record.carried_headers({HEADER_NOT_BEFORE: p.not_before_ms}),
            )
            for p in parked
        ]
        try:
            await self.producer.send_all(copies)
        except ConveyorError as exc:
            log.warning("could not write delayed records again (they wait here): %s", exc)
            for p in parked:
                self._ledger.unpark(p)
            return
        for p in parked:
            self._ledger.settle(p.receipt)

    # -- settling -----------------------------------------------------------------

    async def ack(self, delivery: Delivery) -> bool:
        return self._ledger.settle(delivery.receipt) is not None

    async def retry(self, delivery: Delivery, *, delay_s: float, error: str | None) -> bool:
        record = self._ledger.record(delivery.receipt)
        if record is None:
            return False
        extra: dict[str, object] = {
            HEADER_DELIVERIES: delivery.attempt,
            HEADER_NOT_BEFORE: base.now_ms() + int(max(delay_s, 0) * 1000),
        }
        if error is not None:
            extra[HEADER_LAST_ERROR] = error
        headers = record.carried_headers(extra)
        await self.producer.send(
            Outgoing(self.config.retry_topic, record.value, record.key, headers)
        )
        return self._ledger.settle(delivery.receipt) is not None

    async def dead_letter(self, delivery: Delivery, *, reason: str) -> bool:
        return await self._bury(delivery.receipt, reason, attempt=delivery.attempt)

    async def _bury(self, receipt: Receipt, reason: str, *, attempt: int) -> bool:
        record = self._ledger.record(receipt)
        if record is None:
            return False
        if self.queue.options.dead_letter:
            await self.dead.bury(record, attempt, reason)
        return self._ledger.settle(receipt) is not None

    async def extend_lease(self, delivery: Delivery, *, seconds: float) -> bool:
        return self._ledger.extend(delivery.receipt, seconds)

    async def release(self, delivery: Delivery) -> bool:
        return self._ledger.release(delivery.receipt)

    # -- looking ------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        topics = await self.cluster.topics()
        lag = 0
        for topic in (self.config.topic, self.config.retry_topic):
            partitions = topics.get(topic, 0)
            if partitions:
                lag += await self.cluster.lag(self.config.group, topic, partitions)
        dead = await self.dead.count() if self.queue.options.dead_letter else 0
        if self._consumer is None:
            return QueueStats(ready=lag, in_flight=None, dead=dead, delayed=None)
        counts = self._ledger.counts()
        ready = max(lag - counts.leased - counts.delayed - counts.held, 0)
        return QueueStats(ready=ready, in_flight=counts.leased, dead=dead, delayed=counts.delayed)

    async def check(self) -> CheckResult:
        try:
            if self._closed:
                raise BackendError("this Kafka backend is closed")
            if self._missing_topic is not None:
                raise BackendError(self._missing_topic)
            topics = await self.cluster.topics()
            for topic in (self.config.topic, self.config.retry_topic):
                if topic not in topics:
                    raise BackendError(f"the Kafka topic {topic!r} does not exist")
        except ConveyorError as exc:
            return CheckResult(ok=False, error=exc.message)
        return CheckResult(ok=True)

    async def dead_letters(self, *, limit: int, cursor: str | None = None) -> DeadLetterPage:
        return await self.dead.page(limit, cursor)

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        return await self.dead.redrive(ids)

    async def delete_dead_letters(self, ids: Sequence[str]) -> int:
        return await self.dead.delete(ids)
