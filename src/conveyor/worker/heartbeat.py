"""The beat that keeps a worker's registration (`conveyor.workers`) fresh."""

from __future__ import annotations

import asyncio
import logging

from conveyor.worker.outcome import Counters
from conveyor.workers import WorkerDirectory, WorkerInfo

log = logging.getLogger("conveyor.worker")


class Heartbeat:
    """Registers a worker, then beats every `info.heartbeat_s` until stopped."""

    def __init__(self, directory: WorkerDirectory, info: WorkerInfo, counters: Counters) -> None:
        self.directory = directory
        self.info = info
        self.counters = counters
        self._registered = False

    async def run(self) -> None:
        while True:
            try:
                if self._registered:
                    await self.directory.beat(self.info.id, self.counters)
                else:
                    await self.directory.register(self.info)
                    self._registered = True
            except Exception as exc:
                log.warning("heartbeat failed (will retry): %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.info.heartbeat_s)

    async def stopped(self) -> None:
        if not self._registered:
            return
        try:
            await self.directory.beat(self.info.id, self.counters, stopped=True)
        except Exception as exc:
            log.warning("could not record the worker's stop: %s: %s", type(exc).__name__, exc)
