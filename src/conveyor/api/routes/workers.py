"""Worker processes (scope `admin`): running ones and those recently gone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BaseModel

from conveyor.api.auth import platform_of, require
from conveyor.api.routing import Router
from conveyor.db.types import utcnow
from conveyor.keys import ApiKey, Scope
from conveyor.workers import WorkerRecord, WorkerState

router = Router(prefix="/api/v1/zstorage/workers", tags=["workers"])
Admin = Annotated[ApiKey, Depends(require(Scope.ADMIN))]


class WorkerOut(BaseModel):
    id: str
    state: WorkerState
    host: str
    pid: int
    version: str
    queues: list[str]
    handlers: list[str]
    concurrency: int
    heartbeat_s: float
    started_at: datetime
    last_beat_at: datetime
    stopped_at: datetime | None
    processed: int
    failed: int
    in_flight: int

    @classmethod
    def of(cls, record: WorkerRecord, now: datetime) -> WorkerOut:
        info = record.info
        return cls(
            id=info.id,
            state=record.state(now),
            host=info.host,
            pid=info.pid,
            version=info.version,
            queues=info.queues,
            handlers=info.handlers,
            concurrency=info.concurrency,
            heartbeat_s=info.heartbeat_s,
            started_at=record.started_at,
            last_beat_at=record.last_beat_at,
            stopped_at=record.stopped_at,
            processed=record.processed,
            failed=record.failed,
            in_flight=record.in_flight,
        )


class WorkerList(BaseModel):
    items: list[WorkerOut]


@router.get("", response_model=WorkerList, summary="Workers, running and recently gone")
async def list_workers(
    request: Request,
    _: Admin,
    recent_s: Annotated[
        int, Query(ge=0, le=30 * 86_400, description="Include workers gone this recently.")
    ] = 86_400,
) -> WorkerList:
    records = await platform_of(request).workers.list(recent_s=recent_s)
    now = utcnow()
    return WorkerList(items=[WorkerOut.of(record, now) for record in records])
