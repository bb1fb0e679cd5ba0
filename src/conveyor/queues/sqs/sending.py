"""Sending to an SQS queue: SendMessageBatch calls of up to 10 messages.

A batch is cut into calls of at most 10 messages and at most the queue's size limit.
On a FIFO queue the calls go one after another, in order; a standard queue keeps no
order, so its calls go out together. Results always come back in the order given.
Single publishes that arrive while calls are in flight share the next call (group
commit), so concurrent publishers need fewer round trips; each caller still gets its
answer only once SQS has taken its own message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

from conveyor.exceptions import BackendError, PublishFailed
from conveyor.group_commit import GroupCommit
from conveyor.queues.base import PublishResult
from conveyor.queues.sqs.client import SQSClient
from conveyor.queues.sqs.codec import Entry

#: SQS takes at most 10 messages per batch call.
BATCH_MAX = 10
#: Batch calls in flight at once for concurrent single publishes.
SENDERS = 8
#: Tries for an entry that SQS failed on its side (SenderFault false) within a batch call.
ENTRY_ATTEMPTS = 3
ENTRY_RETRY_BASE_S = 0.05

Outcome = PublishResult | BackendError


def chunks(entries: Sequence[Entry], max_bytes: int) -> Iterator[list[Entry]]:
    """Consecutive runs of at most 10 entries and `max_bytes` in all."""
    chunk: list[Entry] = []
    size = 0
    for entry in entries:
        if chunk and (len(chunk) == BATCH_MAX or size + entry.size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry.size
    if chunk:
        yield chunk


class Sender:
    def __init__(
        self, client: SQSClient, queue_url: str, name: str, max_bytes: int, *, fifo: bool
    ) -> None:
        self._client = client
        self._url = queue_url
        self._ordered = fifo
        self._what = f"send to SQS queue {name!r}"
        self.max_bytes = max_bytes
        self._singles: GroupCommit[Entry, Outcome] = GroupCommit(
            self._send_all, writers=SENDERS, max_batch=BATCH_MAX
        )

    async def close(self) -> None:
        await self._singles.close()

    async def send(self, entry: Entry) -> PublishResult:
        (outcome,) = await self._singles.submit([entry])
        if isinstance(outcome, BackendError):
            raise outcome
        return outcome

    async def send_batch(self, entries: Sequence[Entry]) -> list[PublishResult]:
        """Every entry or an error; on a FIFO queue the first failure stops the rest."""
        if self._ordered:
            outcomes: list[Outcome] = []
            for chunk in chunks(entries, self.max_bytes):
                outcomes += await self._send_chunk(chunk)
                if any(isinstance(o, BackendError) for o in outcomes):
                    break
        else:
            calls = [self._send_chunk(chunk) for chunk in chunks(entries, self.max_bytes)]
            outcomes = [o for answers in await asyncio.gather(*calls) for o in answers]
        results: list[PublishResult] = []
        for outcome in outcomes:
            if isinstance(outcome, BackendError):
                raise outcome
            results.append(outcome)
        return results

    async def _send_all(self, entries: Sequence[Entry]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for chunk in chunks(entries, self.max_bytes):
            outcomes += await self._send_chunk(chunk)
        return outcomes

    async def _send_chunk(self, entries: list[Entry]) -> list[Outcome]:
        pending = dict(enumerate(entries))
        outcomes: dict[int, Outcome] = {}
        for attempt in range(ENTRY_ATTEMPTS):
            if attempt:
                await asyncio.sleep(ENTRY_RETRY_BASE_S * 2**attempt)
            response = await self._client.call(
                "send_message_batch",
                self._what,
                publishing=True,
                QueueUrl=self._url,
                Entries=[{"Id": str(i), **e.params()} for i, e in pending.items()],
            )
            for sent in response.get("Successful", []):
                index = int(sent["Id"])
                outcomes[index] = PublishResult(entries[index].message_id, sent["MessageId"])
                del pending[index]
            for failed in response.get("Failed", []):
                index = int(failed["Id"])
                outcomes[index] = self._failure(failed)
                if failed.get("SenderFault", True):
                    del pending[index]  # our fault: sending it again would fail again
            if not pending:
                break
        lost = PublishFailed(f"could not {self._what}: SQS did not answer for the message")
        return [outcomes.get(i, lost) for i in range(len(entries))]

    def _failure(self, failed: dict[str, Any]) -> PublishFailed:
        code = failed.get("Code", "error")
        detail = self._client.scrub(str(failed.get("Message", "")))
        return PublishFailed(f"could not {self._what}: {code}: {detail}")
