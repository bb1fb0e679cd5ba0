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
from conveyor.links.hook import LinkHook
from conveyor.links.outbox import OutboxStore
from conveyor.links.registry import LinkRegistry
from conveyor.links.relay import Relay, RelayOptions
from conveyor.logins import LoginThrottle
from conveyor.queues.activity import PublishActivity
from conveyor.queues.embedded import EmbeddedStore
from conveyor.queues.idempotency import IdempotencyStore
from conveyor.queues.pool import BackendPool
from conveyor.queues.publisher import Publisher
from conveyor.queues.registry import QueueRegistry
from conveyor.sessions import SessionStore
from conveyor.storage import Storage
from conveyor.users import UserStore
from conveyor.workers import WorkerDirectory

log = logging.getLogger(__name__)

IDEMPOTENCY_PRUNE_INTERVAL_S = 3600.0
RELAY_STOP_TIMEOUT_S = 10.0
MIN_RECONCILE_INTERVAL_S = 0.5


class Platform:
    """Everything a Conveyor process needs, created from its settings.

    `open()` starts the background upkeep (the outbox relay, key usage flushing);
    `close()` stops it and releases the database. Use it as
    `async with Platform(settings) as platform:`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database.from_settings(settings)
        self.keys = KeyStore(self.db, cache_ttl_s=settings.key_cache_ttl_s)
        self.users = UserStore(self.db)
        #: The back-office's sessions and its login throttle.
        self.sessions = SessionStore(
            self.db,
            idle_timeout_s=settings.session_idle_timeout_s,
            max_age_s=settings.session_max_age_s,
        )
        self.logins = LoginThrottle(self.db)
        self.queues = QueueRegistry(
            self.db,
            SecretBox(settings.secret_keys),
            cache_ttl_s=settings.key_cache_ttl_s,
            deny_private_urls=settings.deny_private_queue_urls,
        )
        self.embedded = EmbeddedStore(self.db)
        self.backends = BackendPool(self.queues, self.embedded)
        self.idempotency = IdempotencyStore(self.db)
        self.activity = PublishActivity(self.db)
        #: Big JSON bodies (batches, bulk writes) are parsed an element at a time, taking
        #: turns, so that other requests wait for one element at most.
        self.parse_turns = asyncio.Lock()
        self.publisher = Publisher(
            self.backends, self.idempotency, self.activity, parse_turns=self.parse_turns
        )
        self.links = LinkRegistry(self.db)
        self.outbox = OutboxStore(self.db)
        self.relay = Relay(
            self.outbox,
            self.queues,
            self.backends,
            RelayOptions(retention_s=settings.outbox_retention_s),
            self.activity,
        )
        self.outbox.relay_with(self.relay)
        self.link_hook = LinkHook(
            links=self.links,
            queues=self.queues,
            backends=self.backends,
            embedded=self.embedded,
            outbox=self.outbox,
            sync_timeout_s=settings.link_sync_timeout_s,
        )
        self.storage = Storage(self.db)
        self.storage.records.hooks.append(self.link_hook)
        self.storage.tables.drop_hooks.append(self.links.delete_table)
        self.workers = WorkerDirectory(self.db)
        self._tasks: list[asyncio.Task[None]] = []
        self._relay_task: asyncio.Task[None] | None = None

    async def migrate(self) -> MigrationResult:
        return await migrate(self.db)

    async def open(self, *, relay: bool | None = None) -> None:
        """Start the background upkeep; the outbox relay too unless told otherwise
        (`relay=None` follows the `relay_enabled` setting)."""
        if self.settings.relay_enabled if relay is None else relay:
            self._relay_task = asyncio.create_task(self.relay.run())
        self._tasks.append(asyncio.create_task(self.keys.run_usage_flusher()))
        self._tasks.append(asyncio.create_task(self._prune_idempotency_keys()))
        self._tasks.append(asyncio.create_task(self.activity.run_flusher()))
        # Queues changed or deleted elsewhere: their clients close within seconds.
        interval_s = max(self.settings.key_cache_ttl_s, MIN_RECONCILE_INTERVAL_S)
        self._tasks.append(asyncio.create_task(self.backends.run_reconciler(interval_s)))

    async def _prune_idempotency_keys(self) -> None:
        while True:
            # Sleep first: a short-lived platform (a CLI command, a test) has nothing to do.
            await asyncio.sleep(IDEMPOTENCY_PRUNE_INTERVAL_S)
            try:
                await self.idempotency.prune()
            except Exception:
                log.warning("could not prune old idempotency keys; will retry", exc_info=True)

    async def stop_relay(self) -> None:
        """Stop this process's outbox relay (after the batch at hand)."""
        if self._relay_task is None:
            return
        self.relay.stop()
        try:
            await asyncio.wait_for(self._relay_task, RELAY_STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("the outbox relay did not stop within %s s", RELAY_STOP_TIMEOUT_S)
        self._relay_task = None

    async def close(self) -> None:
        await self.stop_relay()
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
        try:
            await self.activity.flush()
        except Exception:
            log.warning("could not record the last publish times at shutdown", exc_info=True)
        await self.storage.close()
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
