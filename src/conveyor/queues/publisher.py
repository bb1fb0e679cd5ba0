"""Publishing: validate, deduplicate on the idempotency key, hand to the backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from conveyor.exceptions import BadRequest, PayloadTooLarge
from conveyor.queues.activity import PublishActivity
from conveyor.queues.base import OutgoingMessage, PublishResult
from conveyor.queues.idempotency import IdempotencyStore, check_key
from conveyor.queues.model import Queue
from conveyor.queues.payload import parse_object
from conveyor.queues.pool import BackendPool

#: Messages per publish-batch request, at most.
MAX_BATCH = 100

Send = Callable[[list[OutgoingMessage]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Receipt:
    """What the publish API answers for one message."""

    queue_id: str
    result: PublishResult

    def as_json(self) -> dict[str, str]:
        return {
            "message-id": self.result.message_id,
            "sqs-id": self.result.backend_id,
            "backend-message-id": self.result.backend_id,
            "queue-id": self.queue_id,
        }


class Publisher:
    def __init__(
        self,
        backends: BackendPool,
        idempotency: IdempotencyStore,
        activity: PublishActivity | None = None,
    ) -> None:
        self._backends = backends
        self._idempotency = idempotency
        self._activity = activity

    async def publish(
        self,
        queue: Queue,
        body: bytes,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Publish one JSON object (raw bytes, checked here); the API's answer."""
        parse_object(body, max_bytes=queue.options.max_message_bytes)

        async def send(messages: list[OutgoingMessage]) -> dict[str, Any]:
            backend = await self._backends.get(queue)
            answer = Receipt(queue.id, await backend.publish(messages[0])).as_json()
            self._published(queue)
            return answer

        message = OutgoingMessage(body=body, headers=headers or {})
        return await self._once(queue, idempotency_key, [message], send)

    async def publish_batch(
        self, queue: Queue, body: bytes, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Publish `{"messages": [obj, …]}` all together; answers in the same order."""
        limit = queue.options.max_message_bytes
        document = parse_object(body, max_bytes=limit * MAX_BATCH, what="batch")
        items = document.get("messages")
        if set(document) != {"messages"} or not isinstance(items, list) or not items:
            raise BadRequest('a batch is {"messages": [object, …]} with at least one message')
        if len(items) > MAX_BATCH:
            raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH} messages, not {len(items)}")
        outgoing = [
            OutgoingMessage(body=_encode_item(i, item, limit)) for i, item in enumerate(items)
        ]

        async def send(messages: list[OutgoingMessage]) -> dict[str, Any]:
            backend = await self._backends.get(queue)
            results = await backend.publish_batch(messages)
            self._published(queue)
            return {"results": [Receipt(queue.id, r).as_json() for r in results]}

        return await self._once(queue, idempotency_key, outgoing, send)

    async def publish_object(
        self, queue: Queue, payload: dict[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Publish a Python dict (CLI, handlers): the same checks as the API."""
        return await self.publish(queue, orjson.dumps(payload), headers=headers)

    def _published(self, queue: Queue) -> None:
        if self._activity is not None:
            self._activity.note(queue.id)

    async def _once(
        self, queue: Queue, key: str | None, messages: list[OutgoingMessage], send: Send
    ) -> dict[str, Any]:
        """Send, or with an idempotency key: the first answer, or send under the message
        ids of the key's earlier attempts (a failed attempt may still have reached the
        broker: the retry's copy then carries the same id, for consumers to drop)."""
        if key is None:
            return await send(messages)
        check_key(key)
        attempt = await self._idempotency.begin(queue.id, key, [m.id for m in messages])
        if attempt.answer is not None:
            return attempt.answer
        messages = [replace(m, id=i) for m, i in zip(messages, attempt.message_ids, strict=True)]
        try:
            answer = await send(messages)
        except BaseException:
            await self._idempotency.release(queue.id, key)
            raise
        await self._idempotency.complete(queue.id, key, answer)
        return answer


def _encode_item(index: int, item: Any, limit: int) -> bytes:
    if not isinstance(item, dict):
        raise BadRequest(f"messages[{index}] must be a JSON object")
    body = orjson.dumps(item)
    if len(body) > limit:
        raise PayloadTooLarge(f"messages[{index}] is {len(body)} bytes; this queue accepts {limit}")
    return body
