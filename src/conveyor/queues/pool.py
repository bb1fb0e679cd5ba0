"""Open backends, one per registered queue, reused across requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from conveyor.exceptions import BackendError, ConnectionFailed, ConveyorError, QueueNotFound
from conveyor.queues import addresses
from conveyor.queues.base import QueueBackend
from conveyor.queues.embedded import EmbeddedStore
from conveyor.queues.model import Credentials, Queue, QueueType
from conveyor.queues.registry import QueueRegistry

log = logging.getLogger(__name__)

BrokerFactory = Callable[[Queue, Credentials], QueueBackend]

# Each broker's backend is imported when a queue of its type is first used, so that a
# missing driver fails with an install hint. Each is built here in typed code: mypy
# checks that it implements every member of `QueueBackend`, which it declares.


def _rabbitmq() -> BrokerFactory:
    from conveyor.queues.rabbitmq import RabbitMQBackend

    return lambda queue, credentials: RabbitMQBackend(queue, credentials)


def _kafka() -> BrokerFactory:
    from conveyor.queues.kafka import KafkaBackend

    return lambda queue, credentials: KafkaBackend(queue, credentials)


def _sqs() -> BrokerFactory:
    from conveyor.queues.sqs import SQSBackend

    return lambda queue, credentials: SQSBackend(queue, credentials)


#: Broker backends: how to load each, and the extra that installs its driver.
_BROKERS: dict[QueueType, tuple[Callable[[], BrokerFactory], str]] = {
    QueueType.RABBITMQ: (_rabbitmq, "rabbitmq"),
    QueueType.KAFKA: (_kafka, "kafka"),
    QueueType.SQS: (_sqs, "sqs"),
}


def broker_factory(queue_type: QueueType) -> BrokerFactory:
    load, extra = _BROKERS[queue_type]
    try:
        return load()
    except ImportError as exc:
        raise BackendError(
            f"{queue_type.value} queues need extra packages: "
            f"pip install 'conveyor[{extra}]' ({exc})"
        ) from exc


class BackendPool:
    """Hands out an open backend per queue, rebuilt when the queue is edited."""

    def __init__(self, registry: QueueRegistry, embedded: EmbeddedStore) -> None:
        self._registry = registry
        self._embedded = embedded
        registry.on_change(self.discard)
        self._open: dict[str, QueueBackend] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: The last failed open per queue: when it ended, and why.
        self._failed: dict[str, tuple[float, ConveyorError]] = {}

    async def get(self, queue: Queue) -> QueueBackend:
        backend = self._open.get(queue.id)
        if backend is not None and backend.queue.updated_at == queue.updated_at:
            return backend
        waiting_since = time.monotonic()
        async with self._locks.setdefault(queue.id, asyncio.Lock()):
            backend = self._open.get(queue.id)
            if backend is not None and backend.queue.updated_at == queue.updated_at:
                return backend
            # Callers that queued behind an open that failed share its error: else each
            # would wait out a connect timeout in turn, the last one for many of them.
            failed = self._failed.get(queue.id)
            if failed is not None and failed[0] >= waiting_since:
                raise failed[1].with_traceback(None)
            if backend is not None:
                await self._close(backend)
            try:
                fresh = await self.connect(queue)
            except ConveyorError as exc:
                self._failed[queue.id] = (time.monotonic(), exc)
                raise
            self._failed.pop(queue.id, None)
            self._open[queue.id] = fresh
            return fresh

    async def connect(self, queue: Queue) -> QueueBackend:
        """A new, opened backend for `queue` that the caller owns and must close."""
        if queue.type is QueueType.EMBEDDED:
            return self._embedded.backend(queue)
        if self._registry.deny_private_urls:
            # Checked at every connect: a name may resolve elsewhere than when registered.
            problem = await addresses.private_problem(queue.type, queue.url)
            if problem is not None:
                raise ConnectionFailed(f"queue {queue.name!r}: {problem}")
        factory = broker_factory(queue.type)
        backend = factory(queue, await self._registry.credentials(queue))
        await backend.open()
        return backend

    async def discard(self, queue_id: str) -> None:
        backend = self._open.pop(queue_id, None)
        self._failed.pop(queue_id, None)
        if backend is not None:
            await self._close(backend)

    @property
    def open_ids(self) -> frozenset[str]:
        """The ids of the queues this pool holds a backend for."""
        return frozenset(self._open)

    async def reconcile(self) -> None:
        """Close the backends of queues deleted or changed since they were opened, by
        this process or another one (seen through the registry's short-lived cache)."""
        for queue_id in list(self._open):
            try:
                current: Queue | None = await self._registry.get(queue_id)
            except QueueNotFound:
                current = None
            async with self._locks.setdefault(queue_id, asyncio.Lock()):
                backend = self._open.get(queue_id)
                if backend is None or (current and current.updated_at == backend.queue.updated_at):
                    continue
                del self._open[queue_id]
                if current is None:
                    self._locks.pop(queue_id, None)
                    self._failed.pop(queue_id, None)
            log.info("closing the backend of queue %s: the queue was changed or deleted", queue_id)
            await self._close(backend)

    async def run_reconciler(self, interval_s: float) -> None:
        """`reconcile` every `interval_s`, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reconcile()
            except Exception:
                log.warning("could not check the open backends; will retry", exc_info=True)

    async def close(self) -> None:
        backends, self._open = list(self._open.values()), {}
        for backend in backends:
            await self._close(backend)

    @staticmethod
    async def _close(backend: QueueBackend) -> None:
        with contextlib.suppress(Exception):
            await backend.close()
