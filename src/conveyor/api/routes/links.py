"""Table → queue links (scope `admin`), replays, and the outbox."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response

from conveyor.api.auth import platform_of, require
from conveyor.api.responses import Json
from conveyor.api.routes.storage import BODY, JsonObject
from conveyor.api.routing import Router
from conveyor.exceptions import BadRequest
from conveyor.keys import ApiKey, Scope
from conveyor.links.model import Link, LinkSpec
from conveyor.links.outbox import SENT_COUNT_CAP
from conveyor.links.replay import MAX_RECORDS, replay
from conveyor.links.rows import OutboxRow, Status
from conveyor.platform import Platform
from conveyor.queues.headers import from_epoch_ms
from conveyor.queues.model import Queue

router = Router(prefix="/api/v1/zstorage", tags=["links"], default_response_class=Json)
Admin = Annotated[ApiKey, Depends(require(Scope.ADMIN))]


def link_json(link: Link, queue: Queue) -> dict[str, Any]:
    return {
        "table": link.table_name,
        "queue": {"id": queue.id, "name": queue.name, "type": queue.type.value},
        "events": sorted(link.events, key=["create", "update", "delete"].index),
        "handler": link.handler,
        "mode": link.mode.value,
        "created_at": link.created_at.isoformat(),
        "updated_at": link.updated_at.isoformat(),
    }


async def put_link(
    platform: Platform, table: str, queue_ref: str, body: Any
) -> tuple[Link, Queue, bool]:
    """Shared by the link route and the table routes' `links` field."""
    await platform.storage.tables.get(table)  # 404 for a table that does not exist
    queue = await platform.queues.find(queue_ref)
    link, created = await platform.links.put(table, queue.id, LinkSpec.parse(table, body))
    return link, queue, created


@router.put(
    "/tables/{table}/links/{queue}",
    summary="Link a table to a queue (create or replace)",
    openapi_extra=BODY,
)
async def upsert_link(request: Request, table: str, queue: str, body: JsonObject, _: Admin) -> Json:
    link, target, created = await put_link(platform_of(request), table, queue, body)
    return Json(link_json(link, target), status_code=201 if created else 200)


@router.get("/tables/{table}/links", summary="A table's links")
async def list_links(request: Request, table: str, _: Admin) -> Json:
    platform = platform_of(request)
    await platform.storage.tables.get(table)
    links = await platform.links.all(table)
    return Json(
        {"items": [link_json(link, await platform.queues.get(link.queue_id)) for link in links]}
    )


@router.delete("/tables/{table}/links/{queue}", summary="Unlink a table from a queue")
async def delete_link(request: Request, table: str, queue: str, _: Admin) -> Json:
    platform = platform_of(request)
    target = await platform.queues.find(queue)
    link = await platform.links.delete(table, target.id)
    return Json(link_json(link, target))


@router.post(
    "/tables/{table}/links/{queue}/replay",
    status_code=202,
    summary="Re-emit the records matching a filter (the records query's syntax)",
)
async def replay_records(
    request: Request,
    table: str,
    queue: str,
    _: Admin,
    rate_per_s: Annotated[float, Query(gt=0, le=10_000)] = 100,
    max_records: Annotated[int, Query(ge=1, le=MAX_RECORDS)] = 10_000,
) -> Json:
    platform = platform_of(request)
    target = await platform.queues.find(queue)
    link = await platform.links.get(table, target.id)
    params = [
        (k, v)
        for k, v in request.query_params.multi_items()
        if k not in ("rate_per_s", "max_records")
    ]
    count, cursor = await replay(
        platform.outbox,
        platform.storage,
        link,
        params,
        rate_per_s=rate_per_s,
        limit=max_records,
    )
    return Json(
        {"enqueued": count, "next_cursor": cursor, "rate_per_s": rate_per_s}, status_code=202
    )


def outbox_json(row: OutboxRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "queue_id": row.queue_id,
        "table": row.table_name,
        "record_id": row.record_id,
        "event": row.event,
        "message_id": row.message_id,
        "status": row.status.value,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "backend_id": row.backend_id,
        # ISO 8601 in UTC, as every other time in the API (stored as epoch ms).
        "created_at": from_epoch_ms(row.created_at),
        "next_attempt_at": from_epoch_ms(row.next_attempt_at),
        "sent_at": from_epoch_ms(row.sent_at) if row.sent_at is not None else None,
    }


@router.get("/outbox", summary="Outbox rows (newest first) and counts per status")
async def list_outbox(
    request: Request,
    _: Admin,
    status: Status | None = None,
    table: str | None = None,
    record_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> Json:
    platform = platform_of(request)
    after = None
    if cursor is not None:
        if not cursor.isdigit():
            raise BadRequest("invalid cursor")
        after = int(cursor)
    rows = await platform.outbox.page(
        status=status, table_name=table, record_id=record_id, limit=limit, after_id=after
    )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    counts = await platform.outbox.counts()
    return Json(
        {
            "items": [outbox_json(r) for r in rows],
            "next_cursor": next_cursor,
            "counts": counts,
            # Sent rows are counted up to a cap: at the cap, there are at least that many.
            "sent_capped": counts[Status.SENT.value] >= SENT_COUNT_CAP,
        }
    )


@router.post("/outbox/{row_id}/retry", summary="Send a failed or waiting row again now")
async def retry_outbox_row(request: Request, row_id: int, _: Admin) -> Response:
    return Json(outbox_json(await platform_of(request).outbox.retry(row_id)))
