"""Is the server free for other requests while one does heavy work?"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import httpx

#: Between two polls, the work goes on for this long.
PAUSE_S = 0.02


async def health_while(client: httpx.AsyncClient, work: Awaitable[Any]) -> tuple[Any, float, int]:
    """Run `work` and poll /health until it ends: (its result, the longest a /health
    waited, polls). A request that came while the event loop was held up would wait as
    long as the hold-up, so a pause between polls that lasted longer than asked counts
    too (in one process, nothing else measures a loop that was not there to answer).

    A wait counts for the CPU time this thread spent in it, when that is less than the
    time that passed: on a machine busy with other processes the loop may be runnable
    and not running, which no code of ours can help; a loop held up by our own work
    spends the whole wait on the CPU."""
    task = asyncio.ensure_future(work)
    slowest, polls = 0.0, 0
    while not task.done():
        with _Stopwatch() as request:
            response = await client.get("/health")
        assert response.status_code == 200
        polls += 1
        with _Stopwatch() as pause:
            await asyncio.wait({task}, timeout=PAUSE_S)
        overshoot = min(pause.wall - PAUSE_S, pause.cpu) if not task.done() else 0.0
        slowest = max(slowest, min(request.wall, request.cpu), overshoot)
    return await task, slowest, polls


class _Stopwatch:
    """The wall-clock time a block took, and the CPU time this thread spent in it."""

    wall = cpu = 0.0

    def __enter__(self) -> _Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.thread_time() - self._cpu
