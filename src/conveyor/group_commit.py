"""Group commit: many concurrent inserts share one transaction.

A durable insert costs a commit (an fsync on SQLite, a round trip on PostgreSQL). Under
load, requests that arrive while a commit is running are queued and committed together
in the next one, so throughput grows with concurrency while each caller still gets its
answer only after its own row is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Rows per transaction, at most (SQLite's limit on bound parameters is 32766).
MAX_BATCH = 500


class GroupCommit(Generic[Item, Result]):
    """Feeds items to `commit_batch` from `writers` concurrent tasks."""

    def __init__(
        self,
        commit_batch: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        writers: int = 1,
        max_batch: int = MAX_BATCH,
        name: str = "group commit",
    ) -> None:
        self.name = name
        self._commit_batch = commit_batch
        self._writers = writers
        self._max_batch = max_batch
        self._pending: asyncio.Queue[tuple[Item, asyncio.Future[Result]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Commit `items` (together, in this order) and return their results."""
        if self._closed:
            raise RuntimeError("group commit is closed")
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name=self.name) for _ in range(self._writers)
            ]
        if len(items) > 1:
            # A batch of the caller's own must commit all-or-nothing: bypass the queue.
            return list(await self._commit_batch(items))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.put_nowait((items[0], future))
        return [await future]

    async def _run(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while len(batch) < self._max_batch and not self._pending.empty():
                batch.append(self._pending.get_nowait())
            live = [(item, future) for item, future in batch if not future.cancelled()]
            if not live:
                continue
            try:
                results = await self._commit_batch([item for item, _ in live])
            except BaseException as exc:
                failure = exc if isinstance(exc, Exception) else RuntimeError("shutting down")
                for _, future in live:
                    if not future.done():
                        future.set_exception(failure)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        while not self._pending.empty():
            _, future = self._pending.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("shutting down before the commit"))
