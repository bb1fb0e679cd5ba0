"""librdkafka's producer, bridged to asyncio.

`send_all` queues records and awaits one future for all of them; a thread serves
librdkafka's delivery reports (`poll`) and resolves the batches completed by a poll in
one hop to the event loop. A batch resolves only when the broker acknowledged every
record with `acks=all`. librdkafka reports on every record within `message.timeout.ms`
(or at `close`, which purges), so no future waits forever.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from functools import partial
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer

from conveyor.exceptions import PublishFailed
from conveyor.queues.kafka.config import PUBLISH_TIMEOUT_MS, REQUEST_TIMEOUT_S
from conveyor.queues.kafka.errors import describe, kafka_error, map_errors, translate
from conveyor.queues.kafka.handles import weak_callback
from conveyor.queues.kafka.records import Headers

log = logging.getLogger(__name__)

#: How long a publish waits for room when librdkafka's local queue is full.
QUEUE_FULL_WAIT_S = PUBLISH_TIMEOUT_MS / 1000
#: After the cluster was seen down, a publish first checks it is back, this fast.
PROBE_TIMEOUT_S = 2.0

#: Partition and offset of an acknowledged record.
Position = tuple[int, int]


class Outgoing(NamedTuple):
    """One record to produce."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers | None = None
    #: None: librdkafka's partitioner decides (by key).
    partition: int | None = None


class _Batch:
    """Records produced together, resolved together."""

    __slots__ = ("errors", "future", "pending", "positions")

    def __init__(self, future: asyncio.Future[list[Position]], size: int) -> None:
        self.future = future
        self.pending = size
        self.positions: list[Position] = [(-1, -1)] * size
        self.errors: list[KafkaError] = []


class AsyncProducer:
    def __init__(self, config: dict[str, Any], *, secret: str | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._secret = secret
        #: Completed batches, filled by the delivery thread (deque appends are atomic).
        self._done: collections.deque[_Batch] = collections.deque()
        self._closing = threading.Event()
        #: Set by librdkafka's error callback when no broker can be reached.
        self.down_since: float | None = None
        self.fatal: KafkaError | None = None
        #: A record timed out: the producer may be wedged (e.g. its producer id was
        #: forgotten by a rebuilt cluster); it is replaced once the cluster answers.
        self.stale: KafkaError | None = None
        #: Replaced producers finishing (or failing) the records they still hold.
        self._retiring: set[asyncio.Task[None]] = set()
        self._config = {**config, "error_cb": weak_callback(self._on_error)}
        with map_errors("cannot configure the Kafka producer", secret=secret):
            self._producer = Producer(self._config)
        self._thread = threading.Thread(target=self._serve, name="conveyor-kafka-producer")
        self._thread.daemon = True
        self._thread.start()

    async def send(self, record: Outgoing) -> Position:
        """Produce one record and wait for the broker's acknowledgement."""
        return (await self.send_all([record]))[0]

    async def send_all(self, records: list[Outgoing]) -> list[Position]:
        """Produce records and wait until the broker acknowledged them all."""
        if not records:
            return []
        if self.fatal is not None or self.stale is not None or self.down_since is not None:
            await self._recover()
        batch = _Batch(self._loop.create_future(), len(records))
        for index, record in enumerate(records):
            report = partial(self._report, batch, index)
            try:
                self._produce(record, report)
            except BufferError:
                await self._wait_for_room(record, report)
            except (KafkaException, ValueError, TypeError) as exc:
                batch.future.cancel()  # what was produced reports to nobody
                error = kafka_error(exc)
                if error is not None and error.code() == KafkaError._FATAL:
                    self.fatal = error  # the next publish starts a new producer
                raise translate(exc, f"cannot publish to {record.topic!r}",
                                default=PublishFailed) from exc  # fmt: skip
        return await batch.future

    def _produce(self, record: Outgoing, report: Any) -> None:
        if record.partition is None:
            self._producer.produce(record.topic, record.value, record.key,
                                   on_delivery=report, headers=record.headers)  # fmt: skip
        else:
            self._producer.produce(record.topic, record.value, record.key, record.partition,
                                   on_delivery=report, headers=record.headers)  # fmt: skip

    async def _wait_for_room(self, record: Outgoing, report: Any) -> None:
        """librdkafka's local queue is full: let deliveries drain, up to a deadline."""
        deadline = time.monotonic() + QUEUE_FULL_WAIT_S
        with map_errors(f"cannot publish to {record.topic!r}", default=PublishFailed):
            while True:
                await asyncio.sleep(0.005)
                try:
                    self._produce(record, report)
                    return
                except BufferError:
                    if time.monotonic() > deadline:
                        raise

    async def _recover(self) -> None:
        if self.down_since is not None or self.stale is not None:
            # librdkafka would hold the message until its timeout: check the cluster first.
            await self.probe(PROBE_TIMEOUT_S)
        cause = self.fatal or self.stale
        if cause is not None:
            # An idempotent producer that lost its sequence cannot go on: start a new
            # one (a new producer id); the old one fails whatever it still holds.
            log.warning("replacing the Kafka producer after: %s", describe(cause))
            old = self._producer
            with map_errors("cannot configure the Kafka producer", secret=self._secret):
                self._producer = Producer(self._config)
            self.fatal = self.stale = None
            retiring = asyncio.create_task(asyncio.to_thread(_retire, old))
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)

    def _report(self, batch: _Batch, index: int, error: KafkaError | None, message: Any) -> None:
        """In the delivery thread, once per record."""
        if error is None:
            batch.positions[index] = (message.partition(), message.offset())
        else:
            batch.errors.append(error)
        batch.pending -= 1
        if batch.pending == 0:
            self._done.append(batch)

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:  # librdkafka raises fatal errors from poll
                error = kafka_error(exc)
                if error is not None and error.fatal():
                    self.fatal = error
                log.warning("Kafka producer: %s", describe(exc, secret=self._secret))
            except Exception:  # a callback bug must not stop delivery reports
                log.exception("error while serving Kafka delivery reports")
            self._hand_over()

    def _hand_over(self) -> None:
        if not self._done:
            return
        batches = []
        while self._done:
            batches.append(self._done.popleft())
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._resolve, batches)

    def _resolve(self, batches: list[_Batch]) -> None:
        for batch in batches:
            if batch.future.done():
                continue
            if batch.errors:
                if batch.errors[0].code() == KafkaError._MSG_TIMED_OUT:
                    self.stale = batch.errors[0]
                error = translate(batch.errors[0], "the broker did not take the message",
                                  secret=self._secret, default=PublishFailed)  # fmt: skip
                batch.future.set_exception(error)
            else:
                batch.future.set_result(batch.positions)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal = error
            log.error("Kafka producer failed for good: %s", describe(error, secret=self._secret))
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.down_since = time.monotonic()
        else:
            log.warning("Kafka producer: %s", describe(error, secret=self._secret))

    async def probe(self, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        """Fetch the cluster's metadata: raises ConnectionFailed if it cannot."""
        try:
            await asyncio.to_thread(self._producer.list_topics, timeout=timeout_s)
        except Exception as exc:
            raise translate(exc, "cannot reach the Kafka cluster", secret=self._secret) from exc
        self.down_since = None

    async def close(self) -> None:
        """Wait (bounded) for records in flight, then stop the delivery thread."""
        if self._closing.is_set():
            return
        try:
            with map_errors("closing the Kafka producer", secret=self._secret):
                await asyncio.to_thread(self._producer.flush, REQUEST_TIMEOUT_S)
                await asyncio.gather(*self._retiring)
        finally:
            self._closing.set()
            await asyncio.to_thread(self._thread.join, REQUEST_TIMEOUT_S)
            # Whatever was not confirmed by now never will be: fail its publishers.
            with map_errors("closing the Kafka producer", secret=self._secret):
                _drain(self._producer)
            self._hand_over()
            await asyncio.to_thread(self._release)

    def _release(self) -> None:
        """Free the handle here, in a thread of ours (see conveyor.queues.kafka.handles)."""
        del self._producer


def _drain(producer: Producer) -> None:
    """Fail every record the producer still holds (their batches resolve with errors)."""
    producer.purge()
    producer.poll(0)


def _retire(producer: Producer) -> None:
    """Let a replaced producer deliver what it can within the publish timeout."""
    producer.flush(PUBLISH_TIMEOUT_MS / 1000)
    _drain(producer)
