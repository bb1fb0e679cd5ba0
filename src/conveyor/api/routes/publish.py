"""The publish API: by queue id or by name, one message or a batch.

This is the hot path, so it reads the body itself (bounded, checked against the
queue's size cap before reading when Content-Length is given) and answers with orjson.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from starlette.responses import Response

from conveyor.api.auth import authenticate, platform_of
from conveyor.api.bodies import read_body
from conveyor.api.responses import Json
from conveyor.api.routing import Router
from conveyor.exceptions import (
    Forbidden,
    QueueNotFound,
    UnsupportedMediaType,
)
from conveyor.keys import ApiKey, Scope
from conveyor.queues.model import Queue
from conveyor.queues.publisher import MAX_BATCH, batch_limit

router = Router(prefix="/api/v1/zstorage/queue", tags=["publish"])

_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
}
_BATCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["messages"],
                "properties": {
                    "messages": {
                        "type": "array",
                        "maxItems": MAX_BATCH,
                        "items": {"type": "object"},
                    }
                },
            }
        }
    },
}
_ANSWER = {
    "200": {
        "description": "Durably accepted by the queue's backend.",
        "content": {
            "application/json": {
                "example": {
                    "message-id": "…",
                    "sqs-id": "…",
                    "backend-message-id": "…",
                    "queue-id": "…",
                }
            }
        },
    }
}


async def _authorised_queue(
    request: Request, find: Callable[[], Awaitable[Queue]]
) -> tuple[ApiKey, Queue]:
    key: ApiKey = await authenticate(request)
    if not key.allows(Scope.PUBLISH):
        raise Forbidden("this API key lacks the 'publish' scope")
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType()
    queue = await find()
    if not key.may_publish_to(queue.name):
        # The same answer as for a queue that does not exist: no probing.
        raise QueueNotFound(f"no queue {request.path_params.get('queue_ref')!r}")
    return key, queue


async def _publish(request: Request, find: Callable[[], Awaitable[Queue]], batch: bool) -> Response:
    api_key, queue = await _authorised_queue(request, find)
    limit = batch_limit(queue) if batch else queue.options.max_message_bytes
    body = await read_body(request, limit, accepts="this queue")
    key = request.headers.get("idempotency-key")
    publisher = platform_of(request).publisher
    answer: dict[str, Any]
    if batch:
        answer = await publisher.publish_batch(
            queue, body, idempotency_key=key, api_key_id=api_key.id
        )
    else:
        answer = await publisher.publish(queue, body, idempotency_key=key, api_key_id=api_key.id)
    return Json(answer)


def _by_id(request: Request, queue_ref: str) -> Callable[[], Awaitable[Queue]]:
    return lambda: platform_of(request).queues.get(queue_ref)


def _by_name(request: Request, queue_ref: str) -> Callable[[], Awaitable[Queue]]:
    return lambda: platform_of(request).queues.get_by_name(queue_ref)


_DOC: dict[str, Any] = {"openapi_extra": {"requestBody": _BODY}, "responses": _ANSWER}
_BATCH_DOC: dict[str, Any] = {"openapi_extra": {"requestBody": _BATCH_BODY}}


@router.post("/{queue_ref}/publish", summary="Publish a message to a queue, by id", **_DOC)
async def publish_by_id(request: Request, queue_ref: str) -> Response:
    return await _publish(request, _by_id(request, queue_ref), batch=False)


@router.post("/a/{queue_ref}/publish", summary="Publish a message to a queue, by name", **_DOC)
async def publish_by_name(request: Request, queue_ref: str) -> Response:
    return await _publish(request, _by_name(request, queue_ref), batch=False)


@router.post(
    "/{queue_ref}/publish-batch", summary="Publish up to 100 messages, by id", **_BATCH_DOC
)
async def publish_batch_by_id(request: Request, queue_ref: str) -> Response:
    return await _publish(request, _by_id(request, queue_ref), batch=True)


@router.post(
    "/a/{queue_ref}/publish-batch", summary="Publish up to 100 messages, by name", **_BATCH_DOC
)
async def publish_batch_by_name(request: Request, queue_ref: str) -> Response:
    return await _publish(request, _by_name(request, queue_ref), batch=True)
