"""`Idempotency-Key`: a retried publish gets the first answer and publishes nothing.

The key is reserved before publishing, with the message ids it publishes under, and
completed with the answer after. A key whose first request is still running answers
409. One whose attempt failed (a 503: the broker may have taken the message and lost
the confirm) is released, and one whose request died before answering (no response
after `STALE_AFTER_MS`) may be taken over: the retry publishes again, under the same
message ids, so that a copy that did arrive twice is one message to consumers that
deduplicate on the id (the at-least-once promise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Attempt:
    #: The first answer: give it again and publish nothing.
    answer: dict[str, Any] | None
    #: Otherwise, the message ids to publish under.
    message_ids: list[str]


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def begin(self, queue_id: str, key: str, message_ids: list[str]) -> Attempt:
        """The first answer if there is one; otherwise reserve the key, and publish under
        the message ids of its earlier attempt if there was one (else `message_ids`)."""
        row_of = and_(keys.c.queue_id == queue_id, keys.c.key == key)
        now = now_ms()
        async with self._db.write() as conn:
            row = (await conn.execute(select(keys).where(row_of))).first()
            if row is not None:
                if row.response is not None:
                    return Attempt(dict(row.response), [])
                if row.released_at is None and now - row.created_at < STALE_AFTER_MS:
                    raise Conflict("a request with this Idempotency-Key is still in progress")
                earlier = row.message_ids
                if isinstance(earlier, list) and len(earlier) == len(message_ids):
                    message_ids = [str(i) for i in earlier]
                await conn.execute(
                    update(keys)
                    .where(row_of)
                    .values(created_at=now, released_at=None, message_ids=message_ids)
                )
                return Attempt(None, message_ids)
            try:
                await conn.execute(
                    insert(keys).values(
                        queue_id=queue_id, key=key, created_at=now, message_ids=message_ids
                    )
                )
            except IntegrityError:  # a concurrent request reserved it first
                raise Conflict("a request with this Idempotency-Key is still in progress") from None
        return Attempt(None, message_ids)

    async def complete(self, queue_id: str, key: str, response: dict[str, Any]) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(keys)
                .where(keys.c.queue_id == queue_id, keys.c.key == key)
                .values(response=response)
            )

    async def release(self, queue_id: str, key: str) -> None:
        """The attempt failed: a retry may take the key over now, keeping its ids."""
        async with self._db.write() as conn:
            await conn.execute(
                update(keys)
                .where(keys.c.queue_id == queue_id, keys.c.key == key, keys.c.response.is_(None))
                .values(released_at=now_ms())
            )

    async def prune(self, retention_ms: int = RETENTION_MS) -> int:
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(keys).where(keys.c.created_at < now_ms() - retention_ms)
            )
            return result.rowcount
