"""Worker registrations in the platform database, and the beat that keeps them fresh.

`WorkerDirectory` is the only code that touches the `conveyor_workers` table. A worker
is `running` while it beats, `stopped` after a clean shutdown, and `dead` once it has
missed `MISSED_BEATS` beats without stopping (killed, or its machine went away).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from conveyor.db import Database
from conveyor.db.tables import workers
from conveyor.db.types import utcnow
from conveyor.worker.outcome import Counters

log = logging.getLogger("conveyor.worker")

#: Beats a worker may miss before it counts as dead.
MISSED_BEATS = 3
#: Registrations of workers gone for longer than this are deleted.
RETENTION = timedelta(days=7)


class WorkerState(StrEnum):
    #: Beating.
    RUNNING = "running"
    #: Shut down cleanly.
    STOPPED = "stopped"
    #: Stopped beating without shutting down.
    DEAD = "dead"


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says about itself when it starts."""

    id: str
    host: str
    pid: int
    version: str
    queues: list[str]
    handlers: list[str]
    concurrency: int
    heartbeat_s: float


@dataclass(frozen=True)
class WorkerRecord:
    info: WorkerInfo
    started_at: datetime
    last_beat_at: datetime
    stopped_at: datetime | None
    processed: int
    failed: int
    in_flight: int

    @classmethod
    def from_row(cls, row: Row[Any]) -> WorkerRecord:
        info = WorkerInfo(
            row.id,
            row.host,
            row.pid,
            row.version,
            list(row.queues),
            list(row.handlers),
            row.concurrency,
            row.heartbeat_s,
        )
        return cls(
            info,
            row.started_at,
            row.last_beat_at,
            row.stopped_at,
            row.processed,
            row.failed,
            row.in_flight,
        )

    def state(self, now: datetime) -> WorkerState:
        if self.stopped_at is not None:
            return WorkerState.STOPPED
        silence = (now - self.last_beat_at).total_seconds()
        return (
            WorkerState.DEAD
            if silence > MISSED_BEATS * self.info.heartbeat_s
            else (WorkerState.RUNNING)
        )


class WorkerDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(self, info: WorkerInfo) -> None:
        now = utcnow()
        async with self._db.write() as conn:
            await conn.execute(delete(workers).where(workers.c.last_beat_at < now - RETENTION))
            await conn.execute(
                insert(workers).values(
                    **vars(info), started_at=now, last_beat_at=now, **_counts(Counters())
                )
            )

    async def beat(self, worker_id: str, counters: Counters, *, stopped: bool = False) -> None:
        now = utcnow()
        values: dict[str, Any] = {"last_beat_at": now, **_counts(counters)}
        if stopped:
            values["stopped_at"] = now
        async with self._db.write() as conn:
            await conn.execute(update(workers).where(workers.c.id == worker_id).values(values))

    async def list(self, *, recent_s: float = 86_400) -> list[WorkerRecord]:
        """Workers that beat within `recent_s`: running ones, and those recently gone."""
        since = utcnow() - timedelta(seconds=recent_s)
        query = (
            select(workers)
            .where(workers.c.last_beat_at >= since)
            .order_by(workers.c.started_at.desc(), workers.c.id)
        )
        async with self._db.read() as conn:
            return [WorkerRecord.from_row(row) for row in await conn.execute(query)]


def _counts(counters: Counters) -> dict[str, int]:
    return {
        "processed": counters.processed,
        "failed": counters.failed,
        "in_flight": counters.in_flight,
    }


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
            counts = _counts(self.counters)
            due = time.monotonic() - last_beat >= self.info.heartbeat_s
            if due or counts != written:
                try:
                    if self._registered:
                        await self.directory.beat(self.info.id, self.counters)
                    else:
                        await self.directory.register(self.info)
                        self._registered = True
                        counts = _counts(Counters())  # what registering wrote
                    written, last_beat = counts, time.monotonic()
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
