"""The dead-letter queue of an SQS queue: put, count, list, redrive, delete.

SQS cannot browse a queue, so listing, redriving and deleting by id *scan* it: receive
its messages under a short lease, act on those wanted, and make the others visible
again at once. A scan covers at most `MAX_SCAN` messages; on a FIFO dead-letter queue
SQS hands out at most one batch per message group while that batch is held.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from conveyor.exceptions import BackendError, BadRequest
from conveyor.queues import headers as parse
from conveyor.queues.base import DeadLetter, DeadLetterPage
from conveyor.queues.sqs import codec
from conveyor.queues.sqs.client import SQSClient
from conveyor.queues.sqs.codec import Receipt

#: Messages looked at per scan, at most.
MAX_SCAN = 1000
#: How long a scanned message stays hidden if the scan dies before giving it back.
SCAN_LEASE_S = 60
#: A long poll, so that real SQS asks all its servers before saying "empty".
SCAN_WAIT_S = 1
BATCH_MAX = 10

log = logging.getLogger(__name__)

Raw = dict[str, Any]
#: Given a received batch, acts on it and returns the messages to give back.
Visit = Callable[[list[Raw]], Awaitable[list[Raw]]]


class DeadLetterQueue:
    def __init__(self, client: SQSClient, url: str, name: str, *, fifo: bool) -> None:
        self._client = client
        self.url = url
        self.name = name
        self._fifo = fifo

    async def count(self) -> int:
        attributes = await self._call(
            "get_queue_attributes",
            "count the dead letters",
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )
        return sum(int(v) for v in attributes.get("Attributes", {}).values())

    async def put(self, receipt: Receipt, *, reason: str, attempts: int) -> None:
        extra = {
            codec.ATTR_ERROR: {
                "DataType": "String",
                "StringValue": codec.text(reason)[: codec.MAX_ERROR_CHARS] or "-",
            },
            codec.ATTR_ATTEMPTS: {"DataType": "Number", "StringValue": str(attempts)},
        }
        params: dict[str, Any] = {
            "MessageBody": receipt.body,
            "MessageAttributes": codec.with_bookkeeping(receipt.attributes, extra),
        }
        if self._fifo:
            params["MessageGroupId"] = receipt.group_id or codec.DEFAULT_GROUP
            params["MessageDeduplicationId"] = codec.fifo_id(f"{receipt.sqs_id}-{attempts}")
        await self._call("send_message", "move a message to the dead letters", **params)

    async def page(self, limit: int, cursor: str | None) -> DeadLetterPage:
        after = _cursor_key(cursor) if cursor else None
        found: list[DeadLetter] = []

        async def keep(batch: list[Raw]) -> list[Raw]:
            found.extend(letter(raw) for raw in batch)
            return batch

        await self._scan(keep)
        ordered = sorted(found, key=_key)
        if after is not None:
            ordered = [d for d in ordered if _key(d) > after]
        items = ordered[:limit]
        more = len(ordered) > limit
        return DeadLetterPage(items, _cursor(items[-1]) if more and items else None)

    async def move_to(self, queue_url: str, ids: Collection[str] | None) -> int:
        """Send the dead letters (all, or those with `ids`) to `queue_url`; how many moved."""
        ids = set(ids) if ids is not None else None
        moved = 0

        async def redrive(batch: list[Raw]) -> list[Raw]:
            nonlocal moved
            wanted, others = _split(batch, ids)
            if not wanted:
                return others
            sent = await self._send(queue_url, wanted)
            await self._delete(sent)
            moved += len(sent)
            return others + [raw for raw in wanted if raw not in sent]

        await self._scan(redrive, until=lambda: ids is not None and moved >= len(ids))
        return moved

    async def delete(self, ids: Collection[str]) -> int:
        ids = set(ids)
        deleted = 0

        async def drop(batch: list[Raw]) -> list[Raw]:
            nonlocal deleted
            wanted, others = _split(batch, ids)
            await self._delete(wanted)
            deleted += len(wanted)
            return others

        if ids:
            await self._scan(drop, until=lambda: deleted >= len(ids))
        return deleted

    async def _scan(self, visit: Visit, *, until: Callable[[], bool] = lambda: False) -> None:
        held: list[Raw] = []
        seen = 0
        try:
            while seen < MAX_SCAN and not until():
                batch = await self._receive()
                if not batch:
                    break
                seen += len(batch)
                held += await visit(batch)
        finally:
            # Shielded: a cancelled scan still gives back what it holds.
            await asyncio.shield(self._give_back(held))

    async def _receive(self) -> list[Raw]:
        params: dict[str, Any] = {}
        if self._fifo:
            params["ReceiveRequestAttemptId"] = secrets.token_hex(16)
        response = await self._call(
            "receive_message",
            "read the dead letters",
            timeout_s=SCAN_WAIT_S + 10,
            MaxNumberOfMessages=BATCH_MAX,
            WaitTimeSeconds=SCAN_WAIT_S,
            VisibilityTimeout=SCAN_LEASE_S,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=codec.SYSTEM_ATTRIBUTES,
            **params,
        )
        messages: list[Raw] = response.get("Messages", [])
        return messages

    async def _send(self, queue_url: str, batch: list[Raw]) -> list[Raw]:
        """Send copies of `batch` to `queue_url`; those SQS took."""
        entries = []
        for index, raw in enumerate(batch):
            entry: dict[str, Any] = {
                "Id": str(index),
                "MessageBody": raw.get("Body", ""),
                "MessageAttributes": codec.resendable(raw),
            }
            if queue_url.endswith(".fifo"):
                group = raw.get("Attributes", {}).get("MessageGroupId") or codec.DEFAULT_GROUP
                entry["MessageGroupId"] = group
                # A fresh id: the original one may still be inside SQS's 5-minute window.
                entry["MessageDeduplicationId"] = codec.fifo_id(f"redrive-{raw['MessageId']}")
            entries.append(entry)
        response = await self._client.call(
            "send_message_batch",
            f"redrive dead letters of {self.name!r}",
            publishing=True,
            QueueUrl=queue_url,
            Entries=entries,
        )
        return [batch[int(sent["Id"])] for sent in response.get("Successful", [])]

    async def _delete(self, batch: list[Raw]) -> None:
        if not batch:
            return
        await self._call(
            "delete_message_batch",
            "delete dead letters",
            Entries=[
                {"Id": str(i), "ReceiptHandle": raw["ReceiptHandle"]} for i, raw in enumerate(batch)
            ],
        )

    async def _give_back(self, held: list[Raw]) -> None:
        try:
            for start in range(0, len(held), BATCH_MAX):
                entries = [
                    {"Id": str(i), "ReceiptHandle": raw["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, raw in enumerate(held[start : start + BATCH_MAX])
                ]
                await self._call(
                    "change_message_visibility_batch", "give back dead letters", Entries=entries
                )
        except BackendError:
            # They come back by themselves when the scan's lease ends.
            log.warning("could not give back scanned dead letters of %r", self.name, exc_info=True)

    async def _call(self, operation: str, what: str, **params: Any) -> dict[str, Any]:
        return await self._client.call(
            operation, f"{what} in SQS queue {self.name!r}", QueueUrl=self.url, **params
        )


def letter(raw: Raw) -> DeadLetter:
    stamp = codec.Stamp.of(raw)
    attempts = parse.integer(codec.string_attribute(raw, codec.ATTR_ATTEMPTS))
    return DeadLetter(
        id=str(raw["MessageId"]),
        message_id=stamp.message_id,
        body=codec.decode_body(raw),
        headers=codec.headers(raw),
        attempts=attempts if attempts is not None and attempts > 0 else stamp.receive_count,
        last_error=codec.string_attribute(raw, codec.ATTR_ERROR),
        published_at_ms=stamp.published_at_ms,
        dead_at_ms=stamp.sent_at_ms or None,
    )


def _split(batch: list[Raw], ids: Collection[str] | None) -> tuple[list[Raw], list[Raw]]:
    if ids is None:
        return batch, []
    wanted = [raw for raw in batch if raw["MessageId"] in ids]
    return wanted, [raw for raw in batch if raw["MessageId"] not in ids]


def _key(letter: DeadLetter) -> tuple[int, str]:
    return (letter.dead_at_ms or 0, letter.id)


def _cursor(letter: DeadLetter) -> str:
    return f"{letter.dead_at_ms or 0}:{letter.id}"


def _cursor_key(cursor: str) -> tuple[int, str]:
    at, _, sqs_id = cursor.partition(":")
    if parse.integer(at) is None or at.startswith("-") or not sqs_id:
        raise BadRequest(f"{cursor!r} is not a dead-letter cursor of this queue")
    return int(at), sqs_id
