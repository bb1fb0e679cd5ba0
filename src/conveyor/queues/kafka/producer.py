"""librdkafka's producer, bridged to asyncio.

`produce` queues a record and returns a future; a thread serves librdkafka's delivery
reports (`poll`) and resolves the futures of a whole poll in one hop to the event loop.
A future resolves only when the broker acknowledged the record with `acks=all`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Producer

from conveyor.exceptions import PublishFailed
from conveyor.queues.kafka.config import PUBLISH_TIMEOUT_MS, REQUEST_TIMEOUT_S
from conveyor.queues.kafka.errors import describe, map_errors, translate
from conveyor.queues.kafka.records import Headers

log = logging.getLogger(__name__)

#: How long `produce` waits for room when librdkafka's local queue is full.
QUEUE_FULL_WAIT_S = PUBLISH_TIMEOUT_MS / 1000
#: After the cluster was seen down, publishes first check it is back, this fast.
PROBE_TIMEOUT_S = 2.0

#: Partition and offset of an acknowledged record.
Position = tuple[int, int]


@dataclass(frozen=True)
class Outgoing:
    """One record to produce."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers | None = None
    #: None: librdkafka's partitioner decides (by key).
    partition: int | None = None


_Report = tuple["asyncio.Future[Position]", KafkaError | None, int, int]


class AsyncProducer:
    def __init__(self, config: dict[str, Any], *, secret: str | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._secret = secret
        self._reports: list[_Report] = []
        self._reports_lock = threading.Lock()
        self._closing = threading.Event()
        #: Set by librdkafka's error callback when no broker can be reached.
        self.down_since: float | None = None
        self.fatal: KafkaError | None = None
        with map_errors("cannot configure the Kafka producer", secret=secret):
            self._producer = Producer({**config, "error_cb": self._on_error})
        self._thread = threading.Thread(target=self._serve, name="conveyor-kafka-producer")
        self._thread.daemon = True
        self._thread.start()

    async def send(self, record: Outgoing) -> Position:
        """Produce one record and wait for the broker's acknowledgement."""
        (future,) = await self.send_many([record])
        return await future

    async def send_many(self, records: list[Outgoing]) -> list[asyncio.Future[Position]]:
        """Queue several records at once; each future resolves on its acknowledgement."""
        await self._ready()
        futures: list[asyncio.Future[Position]] = []
        for record in records:
            future: asyncio.Future[Position] = self._loop.create_future()
            kwargs: dict[str, Any] = {
                "key": record.key,
                "headers": record.headers,
                "on_delivery": self._reporter(future),
            }
            if record.partition is not None:
                kwargs["partition"] = record.partition
            await self._produce(record.topic, record.value, kwargs)
            futures.append(future)
        return futures

    async def _ready(self) -> None:
        if self.fatal is not None:
            raise PublishFailed(f"the Kafka producer failed: {describe(self.fatal)}")
        if self.down_since is None:
            return
        # librdkafka would hold the message until its timeout: check the cluster first.
        try:
            await asyncio.to_thread(self._producer.list_topics, timeout=PROBE_TIMEOUT_S)
        except Exception as exc:
            raise translate(exc, "the Kafka cluster is unreachable", secret=self._secret) from exc
        self.down_since = None

    async def _produce(self, topic: str, value: bytes, kwargs: dict[str, Any]) -> None:
        deadline = time.monotonic() + QUEUE_FULL_WAIT_S
        with map_errors(f"cannot publish to {topic!r}", default=PublishFailed):
            while True:
                try:
                    self._producer.produce(topic, value, **kwargs)
                    return
                except BufferError:
                    if time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.005)  # the local queue is full: let deliveries drain

    def _reporter(self, future: asyncio.Future[Position]) -> Any:
        def report(error: KafkaError | None, message: Any) -> None:
            with self._reports_lock:
                self._reports.append((future, error, message.partition(), message.offset()))

        return report

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                self._producer.poll(0.05)
            except Exception:  # a callback bug must not stop delivery reports
                log.exception("error while serving Kafka delivery reports")
            self._hand_over()

    def _hand_over(self) -> None:
        with self._reports_lock:
            reports, self._reports = self._reports, []
        if reports and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._resolve, reports)

    def _resolve(self, reports: list[_Report]) -> None:
        for future, error, partition, offset in reports:
            if future.done():
                continue
            if error is None:
                future.set_result((partition, offset))
            else:
                future.set_exception(
                    translate(error, "the broker did not take the message", default=PublishFailed)
                )

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal = error
            log.error("Kafka producer failed for good: %s", describe(error, secret=self._secret))
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.down_since = time.monotonic()
        else:
            log.warning("Kafka producer: %s", describe(error, secret=self._secret))

    async def probe(self) -> None:
        """Fetch the cluster's metadata: raises ConnectionFailed if it cannot."""
        try:
            await asyncio.to_thread(self._producer.list_topics, timeout=REQUEST_TIMEOUT_S)
        except Exception as exc:
            raise translate(exc, "cannot reach the Kafka cluster", secret=self._secret) from exc
        self.down_since = None

    async def close(self) -> None:
        """Wait (bounded) for records in flight, then stop the delivery thread."""
        if self._closing.is_set():
            return
        await asyncio.to_thread(self._producer.flush, REQUEST_TIMEOUT_S)
        self._closing.set()
        await asyncio.to_thread(self._thread.join, REQUEST_TIMEOUT_S)
        self._hand_over()
        # Whatever was not confirmed by now never will be: fail its publishers.
        self._producer.purge()
        self._producer.poll(0)
        self._hand_over()
