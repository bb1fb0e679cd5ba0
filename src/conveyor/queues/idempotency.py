"""`Idempotency-Key`: a retried publish gets the first answer and publishes nothing.

The key is reserved before publishing and completed with the answer after. A key whose
first request is still running answers 409; one whose first request died before
answering (no response after `STALE_AFTER_MS`) may be taken over, which can publish
twice: the at-least-once promise, kept for a crash at the worst moment.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.db import Database
from conveyor.db.tables import idempotency_keys as keys
from conveyor.exceptions import BadRequest, Conflict
from conveyor.queues.base import now_ms

RETENTION_MS = 24 * 3600 * 1000
STALE_AFTER_MS = 60 * 1000
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters")
    return key


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def begin(self, queue_id: str, key: str) -> dict[str, Any] | None:
        """The first answer if there is one; otherwise reserve the key and return None."""
        row_of = and_(keys.c.queue_id == queue_id, keys.c.key == key)
        now = now_ms()
        async with self._db.write() as conn:
            row = (await conn.execute(select(keys).where(row_of))).first()
            if row is not None:
                if row.response is not None:
                    return dict(row.response)
                if now - row.created_at < STALE_AFTER_MS:
                    raise Conflict("a request with this Idempotency-Key is still in progress")
                await conn.execute(update(keys).where(row_of).values(created_at=now))
                return None
            try:
                await conn.execute(insert(keys).values(queue_id=queue_id, key=key, created_at=now))
            except IntegrityError:  # a concurrent request reserved it first
                raise Conflict("a request with this Idempotency-Key is still in progress") from None
        return None

    async def complete(self, queue_id: str, key: str, response: dict[str, Any]) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(keys)
                .where(keys.c.queue_id == queue_id, keys.c.key == key)
                .values(response=response)
            )

    async def abandon(self, queue_id: str, key: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(delete(keys).where(keys.c.queue_id == queue_id, keys.c.key == key))

    async def prune(self, retention_ms: int = RETENTION_MS) -> int:
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(keys).where(keys.c.created_at < now_ms() - retention_ms)
            )
            return result.rowcount
