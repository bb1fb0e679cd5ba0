"""Queue administration (scope `admin`): registry, stats, check, dead letters.

Every route takes a queue's id or its name, as publishing does."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from conveyor.api.auth import platform_of, require
from conveyor.api.routing import Router
from conveyor.exceptions import BackendError
from conveyor.keys import ApiKey, Scope
from conveyor.queues import probes
from conveyor.queues.base import DeadLetter, QueueBackend
from conveyor.queues.headers import from_epoch_ms
from conveyor.queues.model import Queue, QueueType, own_options
from conveyor.queues.purge import purge_dead_letters

router = Router(prefix="/api/v1/zstorage/queues", tags=["queues"])
Admin = Annotated[ApiKey, Depends(require(Scope.ADMIN))]


class QueueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(examples=["orders"])
    type: str = Field(examples=["embedded"], description="embedded, rabbitmq, kafka or sqs")
    url: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, description="Write-only; stored encrypted.")
    region: str | None = None
    description: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class QueuePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    type: str | None = None
    url: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, description="null clears it; absent keeps it.")
    region: str | None = None
    description: str | None = None
    options: dict[str, Any] | None = Field(default=None, description="Merged key by key.")


class QueueOut(BaseModel):
    id: str
    name: str
    type: QueueType
    url: str | None
    username: str | None
    has_password: bool
    region: str | None
    description: str | None
    options: dict[str, Any] = Field(description="The options of the queue's type.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, queue: Queue) -> QueueOut:
        return cls(
            id=queue.id,
            name=queue.name,
            type=queue.type,
            url=queue.url,
            username=queue.username,
            has_password=queue.has_password,
            region=queue.region,
            description=queue.description,
            options=own_options(queue.type, queue.options),
            created_at=queue.created_at,
            updated_at=queue.updated_at,
        )


class QueueList(BaseModel):
    items: list[QueueOut]


class Stats(BaseModel):
    ready: int | None
    in_flight: int | None
    dead: int | None
    delayed: int | None = None


class Check(BaseModel):
    ok: bool
    error: str | None


class DeadLetterOut(BaseModel):
    id: str
    message_id: str
    payload: Any = Field(description="The message body (JSON), or its text if it is not JSON.")
    headers: dict[str, str]
    attempts: int
    last_error: str | None
    published_at: datetime
    dead_at: datetime | None

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterOut:
        try:
            payload = orjson.loads(letter.body)
        except orjson.JSONDecodeError:
            payload = letter.body.decode("utf-8", "replace")
        return cls(
            id=letter.id,
            message_id=letter.message_id,
            payload=payload,
            headers=dict(letter.headers),
            attempts=letter.attempts,
            last_error=letter.last_error,
            published_at=_from_ms(letter.published_at_ms),
            dead_at=_from_ms(letter.dead_at_ms) if letter.dead_at_ms is not None else None,
        )


class DeadLetterList(BaseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None


class Selection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(
        default=None, description="Dead-letter ids; omit (or send no body) for all."
    )


class DeleteSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(default=None, description="Dead-letter ids.")
    all: bool = Field(default=False, description="Delete every dead letter (instead of ids).")

    @model_validator(mode="after")
    def _one_of(self) -> DeleteSelection:
        if (self.ids is None) == (not self.all):
            raise ValueError('give "ids", or "all": true')
        return self


class Moved(BaseModel):
    count: int


def _from_ms(ms: int) -> datetime:
    # Clamped: a stored letter's time must never make its listing fail.
    return from_epoch_ms(ms)


async def _backend(request: Request, queue_ref: str) -> tuple[Queue, QueueBackend]:
    platform = platform_of(request)
    queue = await platform.queues.find(queue_ref)
    return queue, await platform.backends.get(queue)


@router.get("", response_model=QueueList, summary="List queues")
async def list_queues(request: Request, _: Admin, type: QueueType | None = None) -> QueueList:
    queues = await platform_of(request).queues.list(type)
    return QueueList(items=[QueueOut.of(q) for q in queues])


@router.post("", response_model=QueueOut, status_code=201, summary="Register a queue")
async def create_queue(request: Request, body: QueueIn, _: Admin) -> QueueOut:
    return QueueOut.of(
        await platform_of(request).queues.create(body.model_dump(exclude_unset=True))
    )


@router.get("/{queue_id}", response_model=QueueOut, summary="A queue")
async def get_queue(request: Request, queue_id: str, _: Admin) -> QueueOut:
    return QueueOut.of(await platform_of(request).queues.find(queue_id))


@router.patch("/{queue_id}", response_model=QueueOut, summary="Edit a queue")
async def update_queue(request: Request, queue_id: str, body: QueuePatch, _: Admin) -> QueueOut:
    platform = platform_of(request)
    queue_id = (await platform.queues.find(queue_id)).id
    queue = await platform.queues.update(queue_id, body.model_dump(exclude_unset=True))
    return QueueOut.of(queue)


@router.delete("/{queue_id}", response_model=QueueOut, summary="Delete a queue")
async def delete_queue(
    request: Request,
    queue_id: str,
    _: Admin,
    force: Annotated[bool, Query(description="Delete even if messages remain.")] = False,
) -> QueueOut:
    platform = platform_of(request)
    queue_id = (await platform.queues.find(queue_id)).id
    queue = await platform.queues.delete(queue_id, force=force)
    return QueueOut.of(queue)


@router.get("/{queue_id}/stats", response_model=Stats, summary="Message counts")
async def queue_stats(request: Request, queue_id: str, _: Admin) -> Stats:
    platform = platform_of(request)
    counts = await probes.counts(platform.backends, await platform.queues.find(queue_id))
    if counts.stats is None:
        raise BackendError(f"the queue's backend did not answer: {counts.error}")
    stats = counts.stats
    return Stats(
        ready=stats.ready, in_flight=stats.in_flight, dead=stats.dead, delayed=stats.delayed
    )


@router.post("/{queue_id}/check", response_model=Check, summary="Test the connection")
async def check_queue(request: Request, queue_id: str, _: Admin) -> Check:
    platform = platform_of(request)
    result = await probes.check(platform.backends, await platform.queues.find(queue_id))
    return Check(ok=result.ok, error=result.error)


@router.get("/{queue_id}/dead-letters", response_model=DeadLetterList, summary="Dead letters")
async def dead_letters(
    request: Request,
    queue_id: str,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> DeadLetterList:
    backend = (await _backend(request, queue_id))[1]
    page = await backend.dead_letters(limit=limit, cursor=cursor)
    return DeadLetterList(
        items=[DeadLetterOut.of(d) for d in page.items], next_cursor=page.next_cursor
    )


@router.post("/{queue_id}/dead-letters/redrive", response_model=Moved, summary="Redrive")
async def redrive(
    request: Request, queue_id: str, _: Admin, body: Selection | None = None
) -> Moved:
    backend = (await _backend(request, queue_id))[1]
    return Moved(count=await backend.redrive(body.ids if body else None))


@router.post("/{queue_id}/dead-letters/delete", response_model=Moved, summary="Delete some or all")
async def delete_dead_letters(
    request: Request, queue_id: str, body: DeleteSelection, _: Admin
) -> Moved:
    backend = (await _backend(request, queue_id))[1]
    if body.all:
        return Moved(count=await purge_dead_letters(backend))
    return Moved(count=await backend.delete_dead_letters(body.ids or []))
