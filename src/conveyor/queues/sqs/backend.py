"""The SQS backend: a queue on Amazon SQS or any SQS-compatible server.

Receive is a long poll under a lease of the queue's visibility timeout; ack is
DeleteMessage; retry, extend_lease and release are ChangeMessageVisibility; the attempt
is SQS's ApproximateReceiveCount. Dead letters go to the queue's redrive-policy target
when it has one, else to `<name>-dlq` (created when missing, if the credentials may).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Sequence
from typing import Any

from conveyor.exceptions import BackendError, ConfigurationError, PayloadTooLarge
from conveyor.group_commit import GroupCommit
from conveyor.queues import base
from conveyor.queues.base import (
    CheckResult,
    DeadLetterPage,
    Delivery,
    OutgoingMessage,
    PublishResult,
    QueueBackend,
    QueueStats,
)
from conveyor.queues.headers import escape
from conveyor.queues.model import Credentials, Queue
from conveyor.queues.sqs import codec
from conveyor.queues.sqs.address import Address
from conveyor.queues.sqs.client import LONG_POLL_MAX_S, SQSClient
from conveyor.queues.sqs.dead_letters import DeadLetterQueue
from conveyor.queues.sqs.errors import LEASE_LOST_CODES, LeaseLost, QueueMissing
from conveyor.queues.sqs.queues import QueueSetup, missing_message
from conveyor.queues.sqs.sending import BATCH_MAX, Sender

#: SQS caps a lease at 12 hours from the receive.
MAX_VISIBILITY_S = 12 * 3600
#: Between short polls when less than a second of waiting is left (long polls count seconds).
SHORT_POLL_INTERVAL_S = 0.1
#: Lease taken on a message while it is copied to the dead letters.
DEAD_LETTER_LEASE_S = 30
LEASE_EXPIRED_ERROR = "the lease expired on every attempt (did the worker crash?)"

DeleteOutcome = bool | BackendError
log = logging.getLogger(__name__)


class SQSBackend(QueueBackend):
    def __init__(self, queue: Queue, credentials: Credentials) -> None:
        self.queue = queue
        self._credentials = credentials
        self._client: SQSClient | None = None
        self._sender: Sender | None = None
        self._deletes: GroupCommit[Any, DeleteOutcome] | None = None
        self._dlq: DeadLetterQueue | None = None
        self._dlq_problem: str | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        try:
            address = Address.parse(self.queue.url)
        except ConfigurationError as exc:
            raise BackendError(exc.message) from exc
        if not self.queue.region:
            raise BackendError("an SQS queue needs a region, e.g. us-east-1")
        self._address = address
        client = SQSClient(address, self.queue.region, self._credentials)
        try:
            await client.open()
            setup = await QueueSetup(client, address, self.queue.options).run()
        except BaseException:
            await client.close()
            raise
        self._client = client
        self._sender = Sender(
            client, address.url, address.name, setup.max_message_bytes, fifo=address.fifo
        )
        self._deletes = GroupCommit(self._delete_all, writers=4, max_batch=BATCH_MAX)
        self._dlq, self._dlq_problem = setup.dlq, setup.dlq_problem

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self._sender is not None:
            await self._sender.close()
        if self._deletes is not None:
            await self._deletes.close()
        await client.close()

    @property
    def _sqs(self) -> SQSClient:
        if self._client is None:
            raise BackendError(f"the SQS backend of queue {self.queue.name!r} is not open")
        return self._client

    async def _call(self, operation: str, what: str, **params: Any) -> dict[str, Any]:
        what = f"{what} on SQS queue {self._address.name!r}"
        return await self._sqs.call(operation, what, QueueUrl=self._address.url, **params)

    # -- publishing ------------------------------------------------------------------

    def _entry(self, message: OutgoingMessage, limit: int) -> codec.Entry:
        entry = codec.encode(message, fifo=self._address.fifo)
        if entry.size > limit:
            raise PayloadTooLarge(
                f"the message takes {entry.size} bytes in SQS (body and attributes); "
                f"SQS queue {self._address.name!r} accepts {limit}"
            )
        return entry

    @property
    def _open_sender(self) -> Sender:
        if self._client is None or self._sender is None:
            raise BackendError(f"the SQS backend of queue {self.queue.name!r} is not open")
        return self._sender

    async def publish(self, message: OutgoingMessage) -> PublishResult:
        sender = self._open_sender
        return await sender.send(self._entry(message, sender.max_bytes))

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        sender = self._open_sender
        entries = [self._entry(m, sender.max_bytes) for m in messages]  # all checked first
        return await sender.send_batch(entries)

    # -- receiving -------------------------------------------------------------------

    async def receive(self, max_messages: int, *, wait_s: float = 0) -> list[Delivery]:
        if max_messages <= 0:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait_s, 0)
        while True:
            remaining = deadline - loop.time()
            wait = min(int(remaining), LONG_POLL_MAX_S) if remaining >= 1 else 0
            raw = await self._receive_raw(min(max_messages, BATCH_MAX), wait)
            while raw and len(raw) < max_messages and len(raw) % BATCH_MAX == 0:
                more = await self._receive_raw(min(max_messages - len(raw), BATCH_MAX), 0)
                if not more:
                    break
                raw += more
            deliveries = await self._usable([self._delivery(r) for r in raw])
            remaining = deadline - loop.time()
            if deliveries or remaining <= 0:
                return deliveries
            if remaining < 1:
                await asyncio.sleep(min(SHORT_POLL_INTERVAL_S, remaining))

    async def _receive_raw(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if self._address.fifo:
            # Lets botocore's retry of a lost answer get the same messages back.
            params["ReceiveRequestAttemptId"] = secrets.token_hex(16)
        response = await self._sqs.call(
            "receive_message",
            f"receive from SQS queue {self._address.name!r}",
            timeout_s=wait_s + 10,
            QueueUrl=self._address.url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=math.ceil(self.queue.options.visibility_timeout_s),
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=codec.SYSTEM_ATTRIBUTES,
            **params,
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _delivery(self, raw: dict[str, Any]) -> Delivery:
        stamp = codec.Stamp.of(raw)
        headers = codec.headers(raw)
        headers[base.HEADER_MESSAGE_ID] = stamp.message_id
        headers[base.HEADER_ATTEMPT] = str(stamp.receive_count)
        headers[base.HEADER_PUBLISHED_AT] = str(stamp.published_at_ms)
        ordering_key = stamp.ordering_key
        if ordering_key is None and stamp.group_id not in (None, codec.DEFAULT_GROUP):
            ordering_key = stamp.group_id
        return Delivery(
            id=stamp.message_id,
            body=codec.decode_body(raw),
            headers=headers,
            attempt=stamp.receive_count,
            published_at_ms=stamp.published_at_ms,
            receipt=codec.Receipt.of(raw, time.monotonic()),
            backend_id=str(raw["MessageId"]),
            ordering_key=ordering_key,
        )

    async def _usable(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Messages whose every attempt ended in an expired lease go to the dead letters."""
        limit = self.queue.options.max_attempts
        buried = [d for d in deliveries if d.attempt > limit]
        if not buried:
            return deliveries
        outcomes = await asyncio.gather(
            *(self.dead_letter(d, reason=LEASE_EXPIRED_ERROR) for d in buried),
            return_exceptions=True,
        )
        gone = set()
        for delivery, outcome in zip(buried, outcomes, strict=True):
            if isinstance(outcome, bool):  # buried, or somebody else holds it now
                gone.add(delivery.backend_id)
            elif isinstance(outcome, BaseException):
                # Handed out after all: the worker sees attempt > max_attempts and decides.
                log.warning("could not bury message %s: %s", escape(delivery.id), outcome)
        return [d for d in deliveries if d.backend_id not in gone]

    # -- settling --------------------------------------------------------------------

    async def ack(self, delivery: Delivery) -> bool:
        if self._client is None or self._deletes is None:
            raise BackendError(f"the SQS backend of queue {self.queue.name!r} is not open")
        (outcome,) = await self._deletes.submit([delivery.receipt.handle])
        if isinstance(outcome, BackendError):
            raise outcome
        return outcome

    async def _delete_all(self, handles: Sequence[str]) -> list[DeleteOutcome]:
        response = await self._call(
            "delete_message_batch",
            "acknowledge messages",
            Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)],
        )
        outcomes: list[DeleteOutcome] = [True] * len(handles)
        for failed in response.get("Failed", []):
            code = failed.get("Code", "error")
            lost = code in LEASE_LOST_CODES
            outcomes[int(failed["Id"])] = (
                False
                if lost
                else BackendError(
                    f"could not acknowledge a message on SQS queue {self._address.name!r}: "
                    f"{code}: {self._sqs.scrub(str(failed.get('Message', '')))}"
                )
            )
        return outcomes

    async def _change_visibility(self, delivery: Delivery, seconds: float) -> bool:
        receipt: codec.Receipt = delivery.receipt
        held_s = math.ceil(time.monotonic() - receipt.received_at)
        visibility = max(0, min(math.ceil(seconds), MAX_VISIBILITY_S - held_s - 1))
        try:
            await self._call(
                "change_message_visibility",
                "change the visibility of a message",
                ReceiptHandle=receipt.handle,
                VisibilityTimeout=visibility,
            )
        except LeaseLost:
            return False
        return True

    async def retry(self, delivery: Delivery, *, delay_s: float, error: str | None) -> bool:
        # SQS cannot change a message in place: `error` is kept only when it is dead-lettered.
        return await self._change_visibility(delivery, max(delay_s, 0))

    async def extend_lease(self, delivery: Delivery, *, seconds: float) -> bool:
        return await self._change_visibility(delivery, seconds)

    async def release(self, delivery: Delivery) -> bool:
        # SQS counts the receive all the same: ApproximateReceiveCount cannot go back.
        return await self._change_visibility(delivery, 0)

    async def dead_letter(self, delivery: Delivery, *, reason: str) -> bool:
        if not self.queue.options.dead_letter:
            return await self.ack(delivery)
        dlq = self._require_dlq()
        # Still ours? Copying a message somebody else now holds would duplicate it.
        if not await self._change_visibility(delivery, DEAD_LETTER_LEASE_S):
            return False
        await dlq.put(delivery.receipt, reason=reason, attempts=delivery.attempt)
        return await self.ack(delivery)

    def _require_dlq(self) -> DeadLetterQueue:
        if self._dlq is None:
            raise BackendError(self._dlq_problem or "this SQS queue has no dead-letter queue")
        return self._dlq

    # -- watching --------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        counts = self._call("get_queue_attributes", "read the counts", AttributeNames=names)
        if self._dlq is None:
            attributes, dead = (await counts).get("Attributes", {}), 0
        else:
            response, dead = await asyncio.gather(counts, self._dlq.count())
            attributes = response.get("Attributes", {})
        ready, in_flight, delayed = (int(attributes.get(n, 0)) for n in names)
        return QueueStats(ready=ready, in_flight=in_flight, dead=dead, delayed=delayed)

    async def check(self) -> CheckResult:
        try:
            await self._call("get_queue_attributes", "read", AttributeNames=["QueueArn"])
            if self._dlq is not None:
                await self._dlq.count()
        except QueueMissing:
            return CheckResult(ok=False, error=missing_message(self._address))
        except BackendError as exc:
            return CheckResult(ok=False, error=exc.message)
        if self._dlq_problem is not None and self.queue.options.dead_letter:
            return CheckResult(ok=False, error=self._dlq_problem)
        return CheckResult(ok=True)

    async def dead_letters(self, *, limit: int, cursor: str | None = None) -> DeadLetterPage:
        if self._dlq is None:
            return DeadLetterPage([], None)
        return await self._dlq.page(limit, cursor)

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        if self._dlq is None:
            return 0
        return await self._dlq.move_to(self._address.url, ids)

    async def delete_dead_letters(self, ids: Sequence[str]) -> int:
        if self._dlq is None:
            return 0
        return await self._dlq.delete(ids)
