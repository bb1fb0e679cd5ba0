"""Asking backends how a queue is doing, in bounded time and without ever raising.

A page that shows many queues must not hang, or fail whole, because one broker is
down: every call here has a deadline, and a failure becomes a short message in its
cell.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from conveyor.exceptions import ConveyorError
from conveyor.queues.base import CheckResult, QueueStats
from conveyor.queues.embedded import EmbeddedStore
from conveyor.queues.model import Queue, QueueType
from conveyor.queues.pool import BackendPool

log = logging.getLogger(__name__)

STATS_TIMEOUT_S = 3.0
CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Counts:
    stats: QueueStats | None
    error: str | None = None

    @property
    def dead(self) -> int:
        return (self.stats.dead or 0) if self.stats else 0


async def counts(backends: BackendPool, queue: Queue, timeout_s: float = STATS_TIMEOUT_S) -> Counts:
    try:
        async with asyncio.timeout(timeout_s):
            backend = await backends.get(queue)
            return Counts(await backend.stats())
    except TimeoutError:
        return Counts(None, f"no answer within {timeout_s:g} s")
    except ConveyorError as exc:
        return Counts(None, exc.message)
    except Exception as exc:  # one broken backend must not break the whole page
        log.warning("stats of queue %s failed", queue.name, exc_info=True)
        return Counts(None, f"unexpected error ({type(exc).__name__})")


async def counts_of(
    backends: BackendPool, embedded_store: EmbeddedStore, queues: Sequence[Queue]
) -> dict[str, Counts]:
    """Counts of many queues: embedded ones in one query, brokers concurrently."""
    embedded = [q.id for q in queues if q.type is QueueType.EMBEDDED]
    brokers = [q for q in queues if q.type is not QueueType.EMBEDDED]
    found: dict[str, Counts] = {}
    try:
        async with asyncio.timeout(STATS_TIMEOUT_S):
            stats = await embedded_store.stats_many(embedded)
        found |= {queue_id: Counts(s) for queue_id, s in stats.items()}
    except (TimeoutError, SQLAlchemyError) as exc:
        log.warning("counts of the embedded queues failed: %s", exc)
        found |= {queue_id: Counts(None, "the database did not answer") for queue_id in embedded}
    results = await asyncio.gather(*(counts(backends, q) for q in brokers))
    found |= {queue.id: result for queue, result in zip(brokers, results, strict=True)}
    return found


async def check(
    backends: BackendPool, queue: Queue, timeout_s: float = CHECK_TIMEOUT_S
) -> CheckResult:
    """Connect afresh and ask the backend whether the queue can be used."""
    try:
        async with asyncio.timeout(timeout_s):
            backend = await backends.connect(queue)
            try:
                return await backend.check()
            finally:
                await backend.close()
    except TimeoutError:
        return CheckResult(ok=False, error=f"no answer within {timeout_s:g} s")
    except ConveyorError as exc:
        return CheckResult(ok=False, error=exc.message)
    except Exception as exc:
        log.warning("connection check of queue %s failed", queue.name, exc_info=True)
        return CheckResult(ok=False, error=f"unexpected error ({type(exc).__name__})")
