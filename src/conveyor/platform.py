"""The Platform: one per process, owns the database and the services built on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from conveyor.config import Settings
from conveyor.crypto import SecretBox
from conveyor.db import Database
from conveyor.db.migrate import MigrationResult, migrate
from conveyor.keys import KeyStore
from conveyor.queues.embedded import EmbeddedStore
from conveyor.queues.idempotency import IdempotencyStore
from conveyor.queues.pool import BackendPool
from conveyor.queues.publisher import Publisher
from conveyor.queues.registry import QueueRegistry
from conveyor.users import UserStore
from conveyor.worker.heartbeat import WorkerDirectory

log = logging.getLogger(__name__)

IDEMPOTENCY_PRUNE_INTERVAL_S = 3600.0


class Platform:
    """Everything a Conveyor process needs, created from its settings.

    `open()` starts the background upkeep (key usage flushing); `close()` stops it and
    releases the database. Use it as `async with Platform(settings) as platform:`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database.from_settings(settings)
        self.keys = KeyStore(self.db, cache_ttl_s=settings.key_cache_ttl_s)
        self.users = UserStore(self.db)
        self.queues = QueueRegistry(
            self.db,
            SecretBox(settings.secret_keys),
            cache_ttl_s=settings.key_cache_ttl_s,
            deny_private_urls=settings.deny_private_queue_urls,
        )
        self.embedded = EmbeddedStore(self.db)
        self.backends = BackendPool(self.queues, self.embedded)
        self.idempotency = IdempotencyStore(self.db)
        self.publisher = Publisher(self.backends, self.idempotency)
        self.workers = WorkerDirectory(self.db)
        self._tasks: list[asyncio.Task[None]] = []

    async def migrate(self) -> MigrationResult:
        return await migrate(self.db)

    async def open(self) -> None:
        self._tasks.append(asyncio.create_task(self.keys.run_usage_flusher()))
        self._tasks.append(asyncio.create_task(self._prune_idempotency_keys()))

    async def _prune_idempotency_keys(self) -> None:
        while True:
            try:
                await self.idempotency.prune()
            except Exception:
                log.warning("could not prune old idempotency keys; will retry", exc_info=True)
            await asyncio.sleep(IDEMPOTENCY_PRUNE_INTERVAL_S)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            await self.keys.flush_usage()
        except Exception:
            log.warning("could not record API key usage at shutdown", exc_info=True)
        await self.backends.close()
        await self.embedded.close()
        await self.db.close()

    async def __aenter__(self) -> Platform:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
