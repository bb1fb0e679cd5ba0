"""The beat that keeps a worker's registration (`conveyor.workers`) fresh."""

from __future__ import annotations

import asyncio
import logging
import math
import time

from conveyor.worker.outcome import Counters
from conveyor.workers import WorkerDirectory, WorkerInfo, Zero, counts

log = logging.getLogger("conveyor.worker")

#: Changed counts are written within this long, not a whole heartbeat later; an idle
#: worker still writes only once per heartbeat.
PROMPT_S = 1.0


class Heartbeat:
    """Registers a worker, then beats every `info.heartbeat_s` until stopped, and
    within `PROMPT_S` of a change to its counts."""

    def __init__(self, directory: WorkerDirectory, info: WorkerInfo, counters: Counters) -> None:
        self.directory = directory
        self.info = info
        self.counters = counters
        self._registered = False

    async def run(self) -> None:
        written: dict[str, int] | None = None
        last_beat = -math.inf
        while True:
            now_counts = counts(self.counters)
            due = time.monotonic() - last_beat >= self.info.heartbeat_s
            if due or now_counts != written:
                try:
                    if self._registered:
                        await self.directory.beat(self.info.id, self.counters)
                    else:
                        await self.directory.register(self.info)
                        self._registered = True
                        now_counts = counts(Zero())  # what registering wrote
                    written, last_beat = now_counts, time.monotonic()
                except Exception as exc:
                    log.warning("heartbeat failed (will retry): %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(min(PROMPT_S, self.info.heartbeat_s))

    async def stopped(self) -> None:
        if not self._registered:
            return
        try:
            await self.directory.beat(self.info.id, self.counters, stopped=True)
        except Exception as exc:
            log.warning("could not record the worker's stop: %s: %s", type(exc).__name__, exc)
