"""When each queue last received a message, written back in batches.

Publishing is the hot path: instead of an UPDATE per message, the publisher notes the
time in memory and a background task writes the newest time per queue every few
seconds (as API key usage is), so the back-office can show "last publish".
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from sqlalchemy import bindparam, update

from conveyor.db import Database
from conveyor.db.tables import queues

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 5.0


class PublishActivity:
    def __init__(self, db: Database) -> None:
        self._db = db
        #: Queue id → when it last received a message (epoch seconds).
        self._pending: dict[str, float] = {}

    def note(self, queue_id: str) -> None:
        self._pending[queue_id] = time.time()

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        statement = (
            update(queues)
            .where(queues.c.id == bindparam("queue_id"))
            .values(last_published_at=bindparam("at"))
        )
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    statement,
                    [
                        {"queue_id": q, "at": datetime.fromtimestamp(t, UTC)}
                        for q, t in pending.items()
                    ],
                )
        except BaseException:
            # Keep the newer of the two times for the next attempt.
            for queue_id, at in pending.items():
                self._pending[queue_id] = max(at, self._pending.get(queue_id, at))
            raise

    async def run_flusher(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.flush()
            except Exception:
                log.warning("could not record the last publish times; will retry", exc_info=True)
