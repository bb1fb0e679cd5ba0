"""The workers' member of the consumer group, run by a thread of its own.

The thread never waits on handlers: it polls all the time (so the group never sees a
silent member and rebalances, however slow the handlers), moves records into the
`Ledger`, pauses fetching while the ledger is full, and commits each partition's
watermark as handlers settle records. On a rebalance it gives the handlers of the
partitions taken away a short grace to settle, commits what it may, and forgets the
rest: the new owner of those partitions reads them again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from conveyor.queues import base
from conveyor.queues.kafka.errors import describe, map_errors
from conveyor.queues.kafka.handles import weak_callback
from conveyor.queues.kafka.ledger import Ledger
from conveyor.queues.kafka.offsets import Partition
from conveyor.queues.kafka.records import Record

log = logging.getLogger(__name__)

#: Records (and bytes) held in memory, waiting, leased or delayed, before fetching pauses.
MAX_HELD = 2_000
MAX_HELD_BYTES = 64 * 1024 * 1024
#: On a rebalance, how long handlers of the partitions taken away may still finish
#: (and have their offsets committed) before their messages go to the new owner.
REVOKE_GRACE_S = 5.0
#: Records per fetch hand-over, and how long one poll waits.
BATCH = 500
POLL_S = 0.1


class GroupConsumer:
    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        ledger: Ledger,
        wake: Callable[[], None],
        *,
        secret: str | None = None,
    ) -> None:
        self._topics = topics
        self._ledger = ledger
        self._wake = wake
        self._secret = secret
        self._stop = threading.Event()
        self._paused = False
        self._reassigned = False
        #: Why the consumer thread ended on its own, if it did.
        self.failure: str | None = None
        with map_errors("cannot configure the Kafka consumer", secret=secret):
            self._consumer = Consumer(
                {
                    **config,
                    "error_cb": weak_callback(self._on_error),
                    "on_commit": weak_callback(self._on_commit),
                }
            )
        self._thread = threading.Thread(target=self._run, name="conveyor-kafka-consumer")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Commit what is settled, leave the group, and end the thread (blocking)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self._consumer.subscribe(
                self._topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self._stop.is_set():
                self._step()
        except Exception as exc:
            self.failure = describe(exc, secret=self._secret)
            log.exception("the Kafka consumer stopped")
        finally:
            self._commit(asynchronous=False)
            try:
                self._consumer.close()
            except KafkaException as exc:
                log.warning("closing the Kafka consumer: %s", describe(exc, secret=self._secret))
            # Freed here, in this thread (see conveyor.queues.kafka.handles).
            del self._consumer

    def _step(self) -> None:
        try:
            self._flow()
            messages = self._consumer.consume(BATCH, POLL_S)
        except KafkaException as exc:
            log.warning("Kafka consume failed: %s", describe(exc, secret=self._secret))
            self._stop.wait(POLL_S)
            return
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(Record.of(message))
            else:
                log.warning("Kafka consumer: %s", describe(error, secret=self._secret))
        if records and self._ledger.add(records, now_ms=base.now_ms()):
            self._wake()
        self._commit(asynchronous=True)

    def _flow(self) -> None:
        """Pause fetching while the ledger is full; resume when there is room."""
        full = len(self._ledger) >= MAX_HELD or self._ledger.held_bytes >= MAX_HELD_BYTES
        if full == self._paused and not self._reassigned:
            return
        assignment = self._consumer.assignment()
        if full:
            self._consumer.pause(assignment)
        else:
            self._consumer.resume(assignment)
        self._paused, self._reassigned = full, False

    def _commit(self, *, asynchronous: bool, only: set[Partition] | None = None) -> None:
        positions = self._ledger.to_commit(only)
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            if asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            for (topic, partition), position in positions.items():
                self._ledger.unsent((topic, partition), position)
            log.warning("Kafka commit failed: %s", describe(exc, secret=self._secret))

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        failed = [tp for tp in partitions if error is not None or tp.error is not None]
        if error is not None and error.code() == KafkaError._NO_OFFSET:
            return
        for tp in failed:
            self._ledger.unsent((tp.topic, tp.partition), tp.offset)
        cause = error or (failed[0].error if failed else None)
        if cause is not None:
            reason = describe(cause, secret=self._secret)
            log.warning("Kafka commit failed (it will be retried): %s", reason)

    def _on_assign(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self._reassigned = True
        log.info("Kafka partitions assigned: %s", _names(partitions))

    def _on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        deadline = time.monotonic() + REVOKE_GRACE_S
        while self._ledger.leased_in(revoked) and time.monotonic() < deadline:
            if self._stop.wait(0.05):
                break
        self._commit(asynchronous=False, only=revoked)
        self._ledger.drop(revoked)
        self._reassigned = True
        log.info("Kafka partitions revoked: %s", _names(partitions))

    def _on_lost(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self._ledger.drop({(tp.topic, tp.partition) for tp in partitions})
        self._reassigned = True
        log.warning("Kafka partitions lost (the group moved on): %s", _names(partitions))

    def _on_error(self, error: KafkaError) -> None:
        log.warning("Kafka consumer: %s", describe(error, secret=self._secret))


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "none"
