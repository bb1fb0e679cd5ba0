"""The worker: fetch messages, run their handlers up to `concurrency` at once, settle them.

One fetcher per queue claims messages, in batches, into a prefetch buffer; the pump
starts a task per buffered message while fewer than `concurrency` handlers run. The
messages held (being received, buffered, running, or handled and waiting for their ack
to commit) never exceed `concurrency + prefetch`, like a broker's unacked limit. The
lease keeper extends the lease of every held message, so a slow handler or a full
buffer never lets a message reach a second consumer.

`stop()` (SIGTERM/SIGINT in the CLI) stops fetching, releases the buffered messages at
once, lets running handlers finish for `shutdown_timeout_s`, then cancels the rest,
which are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from conveyor.platform import Platform
from conveyor.queues.base import QueueBackend
from conveyor.queues.model import Queue
from conveyor.version import __version__
from conveyor.worker.context import Batteries
from conveyor.worker.dispatch import CANCEL_GRACE_S, Dispatcher
from conveyor.worker.handlers import HandlerRegistry
from conveyor.worker.heartbeat import Heartbeat
from conveyor.worker.leases import Held, LeaseKeeper
from conveyor.worker.logs import StructuredLog
from conveyor.worker.mail import Mailer
from conveyor.worker.outcome import Action, Counters, Verdict, log_outcome, settle
from conveyor.worker.retry import Backoff
from conveyor.worker.watchdog import Watchdog
from conveyor.workers import WorkerDirectory, WorkerInfo

log = logging.getLogger("conveyor.worker")

HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: Longest pause between two attempts to reach a backend that fails.
MAX_RECONNECT_PAUSE_S = 10.0
#: Consecutive failed receives after which the worker opens a fresh backend.
RECONNECT_AFTER_FAILURES = 3


@dataclass(frozen=True)
class WorkerOptions:
    #: Handlers running at once, at most.
    concurrency: int = 10
    #: Messages held beyond the running ones (received and waiting, or waiting for their
    #: ack to commit); None: as many as `concurrency`, at least one per queue.
    prefetch: int | None = None
    #: How long running handlers may take to finish after a stop is asked.
    shutdown_timeout_s: float = 30.0
    #: Longest single wait of a receive call (a stop waits for it).
    receive_wait_s: float = 1.0
    heartbeat_s: float = 10.0
    #: The event loop silent this long: the watchdog names the handler blocking it.
    blocked_loop_s: float = 1.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.prefetch is not None and self.prefetch < 0:
            raise ValueError("prefetch must be 0 or more")


class Worker:
    def __init__(
        self,
        platform: Platform,
        queues: Sequence[Queue],
        registry: HandlerRegistry,
        options: WorkerOptions | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if not queues:
            raise ValueError("a worker needs at least one queue")
        self.platform = platform
        self.queues = list(queues)
        self.registry = registry
        self.options = options or WorkerOptions()
        self.id = secrets.token_hex(8)
        self.counters = Counters()
        #: Set once the worker is fetching.
        self.started = asyncio.Event()
        #: Plain handlers still running in threads when the worker stopped.
        self.abandoned_threads = 0
        prefetch = self.options.prefetch
        if prefetch is None:
            prefetch = max(self.options.concurrency, len(self.queues))
        self._limit = self.options.concurrency + prefetch
        self._backoffs = {q.id: Backoff.of(q.options, rng) for q in self.queues}
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()
        self._buffer: deque[Held] = deque()
        #: One task per message from start to settled; `_active` of them run a handler.
        self._running: dict[asyncio.Task[None], Held] = {}
        self._active = 0
        self._reserved = 0
        #: Claim at least this many at a time while others are still buffered.
        self._batch = max(1, min(prefetch, self.options.concurrency))
        self._backends: list[QueueBackend] = []
        self._keeper = LeaseKeeper.for_queues(self.queues)
        self._log = StructuredLog(log, {"worker": self.id})
        self._dispatcher: Dispatcher | None = None
        self._watchdog: Watchdog

    @property
    def info(self) -> WorkerInfo:
        return WorkerInfo(
            id=self.id,
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            version=__version__,
            queues=[q.name for q in self.queues],
            handlers=self.registry.names(),
            concurrency=self.options.concurrency,
            heartbeat_s=self.options.heartbeat_s,
        )

    def stop(self) -> None:
        """Ask for a graceful stop; `run()` returns once it is done."""
        self._stopping.set()
        self._room.set()

    async def run(self) -> None:
        """Work until `stop()` is called."""
        loop = asyncio.get_running_loop()
        self._watchdog = Watchdog(
            loop, self._running_in, self._log, blocked_s=self.options.blocked_loop_s
        )
        self._watchdog.start()
        threads = ThreadPoolExecutor(self.options.concurrency, "conveyor-handler")
        heartbeat = Heartbeat(WorkerDirectory(self.platform.db), self.info, self.counters)
        background = [
            asyncio.create_task(self._keeper.run()),
            asyncio.create_task(heartbeat.run()),
        ]
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
                batteries = Batteries(self.platform, http, Mailer(self.platform.settings), loop)
                self._dispatcher = Dispatcher(
                    self.registry,
                    batteries,
                    threads,
                    self._log,
                    worker_id=self.id,
                    backoff=self._backoff,
                )
                fetchers = [asyncio.create_task(self._fetch(queue)) for queue in self.queues]
                self._log.info(
                    "worker started",
                    queues=",".join(q.name for q in self.queues),
                    handlers=",".join(self.registry.names()),
                    concurrency=self.options.concurrency,
                )
                self.started.set()
                try:
                    await self._stopping.wait()
                finally:
                    await self._shutdown(fetchers)
        finally:
            self._watchdog.stop()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._keeper.close()
            await heartbeat.stopped()
            threads.shutdown(wait=False, cancel_futures=True)
            for backend in self._backends:
                with contextlib.suppress(Exception):
                    await backend.close()
            self._log.info("worker stopped", **self.counters.summary())

    def _running_in(self, task: asyncio.Task[object] | None) -> dict[str, object]:
        """The handler and message `task` runs (from the watchdog's thread)."""
        for held in list(self._running.values()):
            if task is not None and held.handler is task:
                return {
                    "handler": held.handler_name or "-",
                    "message_id": held.delivery.id,
                    "queue": held.queue.name,
                }
        return {}

    def _backoff(self, held: Held) -> float:
        return self._backoffs[held.queue.id].delay_s(held.delivery.attempt)

    # Fetching ------------------------------------------------------------------------

    async def _fetch(self, queue: Queue) -> None:
        backend = await self._connect(queue)
        idle = False
        failures = 0
        while backend is not None and not self._stopping.is_set():
            # An idle queue polls for one message, leaving the room to busy ones.
            want = await self._reserve(1 if idle and len(self.queues) > 1 else None)
            if not want:
                break
            began = time.monotonic()
            try:
                deliveries = await backend.receive(want, wait_s=self.options.receive_wait_s)
            except Exception as exc:
                failures += 1
                self._log.warning("receive failed", queue=queue.name, error=_error(exc))
                await self._pause(min(MAX_RECONNECT_PAUSE_S, 0.2 * 2**failures))
                if failures % RECONNECT_AFTER_FAILURES == 0:
                    backend = await self._reconnect(queue, backend)
                continue
            finally:
                self._reserved -= want
                self._room.set()
            failures, idle = 0, not deliveries
            vt = queue.options.visibility_timeout_s
            held = [Held(d, backend, queue, began + vt) for d in deliveries]
            if self._stopping.is_set():
                await self._release(held)
                break
            for item in held:
                self._keeper.hold(item)
                self._buffer.append(item)
            self._pump()

    async def _connect(self, queue: Queue) -> QueueBackend | None:
        failures = 0
        while not self._stopping.is_set():
            try:
                backend = await self.platform.backends.connect(queue)
            except Exception as exc:
                failures += 1
                self._log.warning("cannot reach the queue", queue=queue.name, error=_error(exc))
                await self._pause(min(MAX_RECONNECT_PAUSE_S, 0.5 * 2**failures))
                continue
            self._backends.append(backend)
            keep_alive = getattr(backend, "heartbeat_while_blocked", None)
            if callable(keep_alive):
                self._watchdog.keep_alive(keep_alive)
            return backend
        return None

    async def _reconnect(self, queue: Queue, old: QueueBackend) -> QueueBackend | None:
        """A fresh backend; the old one is closed unless messages it holds still run."""
        if not any(h.backend is old for h in (*self._buffer, *self._running.values())):
            self._backends.remove(old)
            with contextlib.suppress(Exception):
                await old.close()
        return await self._connect(queue)

    async def _reserve(self, cap: int | None) -> int:
        """Room for this many more messages (0 once stopping), waiting for some.

        Claims wait until a batch fits, unless handlers would otherwise starve: one
        claim (one commit) per message would cap the drain rate of the embedded queue.
        """
        while not self._stopping.is_set():
            room = self._limit - len(self._buffer) - len(self._running) - self._reserved
            starving = not self._buffer and self._active < self.options.concurrency
            if room >= self._batch or (room > 0 and starving):
                want = room if cap is None else min(room, cap)
                self._reserved += want
                return want
            self._room.clear()
            await self._room.wait()
        return 0

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    # Running -------------------------------------------------------------------------

    def _pump(self) -> None:
        while (
            self._buffer and self._active < self.options.concurrency and not self._stopping.is_set()
        ):
            held = self._buffer.popleft()
            if held.lost:
                self._keeper.drop(held)
                self.counters.lease_lost += 1
                continue
            self._active += 1
            task = asyncio.create_task(self._process(held))
            self._running[task] = held
            task.add_done_callback(self._finished)
        self.counters.in_flight = self._active

    def _finished(self, task: asyncio.Task[None]) -> None:
        held = self._running.pop(task)
        self._keeper.drop(held)
        if not task.cancelled() and task.exception() is not None:
            log.error("worker task failed", exc_info=task.exception())
        self._room.set()
        self._pump()

    async def _process(self, held: Held) -> None:
        assert self._dispatcher is not None
        began = time.monotonic()
        delivery = held.delivery
        try:
            name, verdict = await self._dispatcher.verdict(held)
        except Exception as exc:  # a bug of ours: never lose the message over it
            name, verdict = None, Verdict(Action.RETRY, 1.0, _error(exc), True, exc)
        finally:
            # The handler is done: its slot goes to the next message while this one
            # settles (it still counts as held until then).
            self._active -= 1
            self._room.set()
            self._pump()
        verdict = verdict.bounded(delivery.attempt, held.queue.options.max_attempts)
        if verdict.action is Action.ABANDON:
            self.abandoned_threads += 1
        settled = await settle(held.backend, delivery, verdict)
        self.counters.count(verdict, settled)
        log_outcome(self._log, held, name, verdict, settled, time.monotonic() - began)

    # Stopping ------------------------------------------------------------------------

    async def _release(self, held: list[Held]) -> None:
        async def one(item: Held) -> None:
            verdict = Verdict(Action.RELEASE)
            settled = await settle(item.backend, item.delivery, verdict)
            self._keeper.drop(item)
            self.counters.count(verdict, settled)
            log_outcome(self._log, item, None, verdict, settled, 0.0)

        await asyncio.gather(*(one(item) for item in held))

    async def _shutdown(self, fetchers: list[asyncio.Task[None]]) -> None:
        self.stop()
        buffered, self._buffer = list(self._buffer), deque()
        self._log.info(
            "stopping: releasing unstarted messages, letting running handlers finish",
            unstarted=len(buffered),
            running=len(self._running),
            grace_s=self.options.shutdown_timeout_s,
        )
        await asyncio.gather(self._release(buffered), *fetchers, return_exceptions=True)
        running = set(self._running)
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=self.options.shutdown_timeout_s)
        if not pending:
            return
        self._log.warning(
            "handlers still running after the grace period: cancelling them",
            count=len(pending),
        )
        for task in pending:
            held = self._running.get(task)
            if held is not None and held.handler is not None:
                held.interrupted = True
                held.handler.cancel()
        await asyncio.wait(pending, timeout=CANCEL_GRACE_S + 5.0)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
