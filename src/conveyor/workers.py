"""Worker registrations in the platform database: the store behind `conveyor worker`'s
heartbeats, the workers API and the back-office's workers page.

`WorkerDirectory` is the only code that touches the `conveyor_workers` table. A worker
is `running` while it beats, `stopped` after a clean shutdown, and `dead` once it has
missed `MISSED_BEATS` beats without stopping (killed, or its machine went away).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Row, delete, insert, select, update

from conveyor.db import Database
from conveyor.db.tables import workers
from conveyor.db.types import utcnow


class Counts(Protocol):
    """A worker's running totals, as a beat records them."""

    @property
    def processed(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def in_flight(self) -> int: ...


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
                    **vars(info),
                    started_at=now,
                    last_beat_at=now,
                    processed=0,
                    failed=0,
                    in_flight=0,
                )
            )

    async def beat(self, worker_id: str, counters: Counts, *, stopped: bool = False) -> None:
        now = utcnow()
        values: dict[str, Any] = {"last_beat_at": now, **counts(counters)}
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


@dataclass(frozen=True)
class Zero:
    """No work yet: the counts a registration writes."""

    processed: int = 0
    failed: int = 0
    in_flight: int = 0


_NONE_YET = Zero()


def counts(counters: Counts) -> dict[str, int]:
    """The counts a beat writes."""
    return {
        "processed": counters.processed,
        "failed": counters.failed,
        "in_flight": counters.in_flight,
    }
