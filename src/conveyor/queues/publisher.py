"""Publishing: validate, deduplicate on the idempotency key, hand to the backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import orjson

from conveyor.exceptions import BadRequest, PayloadTooLarge
from conveyor.json_bodies import parse_items, parse_object
from conveyor.queues.activity import PublishActivity
from conveyor.queues.base import OutgoingMessage, PublishResult
from conveyor.queues.idempotency import IdempotencyStore, Scope, check_key
from conveyor.queues.model import Queue
from conveyor.queues.pool import BackendPool

#: Messages per publish-batch request, at most.
MAX_BATCH = 100
#: Bytes of a publish-batch body, at most (a queue may take messages of up to 16 MiB).
MAX_BATCH_BYTES = 32 * 1024 * 1024
BATCH_SHAPE = 'a batch is {"messages": [object, …]} with at least one message'

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
        *,
        parse_turns: asyncio.Lock | None = None,
    ) -> None:
        self._backends = backends
        self._idempotency = idempotency
        self._activity = activity
        #: Batches are parsed taking turns with other big bodies (see `parse_items`).
        self._parse_turns = parse_turns

    async def publish(
        self,
        queue: Queue,
        body: bytes,
        *,
        idempotency_key: str | None = None,
        api_key_id: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Publish one JSON object (raw bytes, checked here); the API's answer. An
        idempotency key is the calling API key's (`api_key_id`)."""
        parse_object(body, max_bytes=queue.options.max_message_bytes)
        message = OutgoingMessage(body=body, headers=headers or {})
        if idempotency_key is None:
            return await self._send_one(queue, [message])
        scope = Scope(api_key_id, queue.id, "publish")
        send = partial(self._send_one, queue)
        return await self._once(scope, idempotency_key, body, [message], send)

    async def publish_batch(
        self,
        queue: Queue,
        body: bytes,
        *,
        idempotency_key: str | None = None,
        api_key_id: str = "",
    ) -> dict[str, Any]:
        """Publish `{"messages": [obj, …]}` all together, each message's bytes as sent;
        answers in the same order."""
        if len(body) > batch_limit(queue):
            raise PayloadTooLarge(
                f"the batch is {len(body)} bytes; this queue accepts {batch_limit(queue)}"
            )
        items = await parse_items(
            body,
            key="messages",
            max_items=MAX_BATCH,
            max_item_bytes=queue.options.max_message_bytes,
            what="batch",
            shape=BATCH_SHAPE,
            turns=self._parse_turns,
            values=False,
        )
        if not items:
            raise BadRequest(BATCH_SHAPE)
        for index, item in enumerate(items):
            if not item.raw.startswith(b"{"):  # valid JSON: an object begins so, only
                raise BadRequest(f"messages[{index}] must be a JSON object")
        outgoing = [OutgoingMessage(body=item.raw) for item in items]
        if idempotency_key is None:
            return await self._send_batch(queue, outgoing)
        scope = Scope(api_key_id, queue.id, "publish-batch")
        send = partial(self._send_batch, queue)
        return await self._once(scope, idempotency_key, body, outgoing, send)

    async def publish_object(
        self, queue: Queue, payload: dict[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Publish a Python dict (CLI, handlers): the same checks as the API."""
        return await self.publish(queue, orjson.dumps(payload), headers=headers)

    async def _send_one(self, queue: Queue, messages: list[OutgoingMessage]) -> dict[str, Any]:
        backend = await self._backends.get(queue)
        answer = Receipt(queue.id, await backend.publish(messages[0])).as_json()
        self._published(queue)
        return answer

    async def _send_batch(self, queue: Queue, messages: list[OutgoingMessage]) -> dict[str, Any]:
        backend = await self._backends.get(queue)
        results = await backend.publish_batch(messages)
        self._published(queue)
        return {"results": [Receipt(queue.id, r).as_json() for r in results]}

    def _published(self, queue: Queue) -> None:
        if self._activity is not None:
            self._activity.note(queue.id)

    async def _once(
        self,
        scope: Scope,
        key: str,
        body: bytes,
        messages: list[OutgoingMessage],
        send: Send,
    ) -> dict[str, Any]:
        """With an idempotency key: the first answer, or send under the message ids of
        the key's earlier attempts (a failed attempt may still have reached the broker:
        the retry's copy then carries the same id, for consumers to drop)."""
        check_key(key)
        attempt = await self._idempotency.begin(scope, key, body, [m.id for m in messages])
        if attempt.answer is not None:
            return attempt.answer
        messages = [replace(m, id=i) for m, i in zip(messages, attempt.message_ids, strict=True)]
        try:
            answer = await send(messages)
        except BaseException:
            await self._idempotency.release(scope, key)
            raise
        await self._idempotency.complete(scope, key, answer)
        return answer


def batch_limit(queue: Queue) -> int:
    """The largest publish-batch body `queue` takes."""
    return min(queue.options.max_message_bytes * MAX_BATCH, MAX_BATCH_BYTES)
