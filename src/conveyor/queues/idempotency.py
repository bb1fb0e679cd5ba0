"""`Idempotency-Key`: a retried publish gets the first answer and publishes nothing.

As in the IETF Idempotency-Key draft and Stripe, a key belongs to one API key, one queue
and one endpoint (`Scope`), and to one request body: the same key with another body is
refused (422 `idempotency_key_reused`), never answered with the first request's ids.

The key is reserved before publishing, with the message ids it publishes under and a
fingerprint of the body, and completed with the answer after. A key whose first request
is still running answers 409. One whose attempt failed (a 503: the broker may have taken
the message and lost the confirm) is released, and one whose request died before
answering (no response after `STALE_AFTER_MS`) may be taken over: the retry publishes
again, under the same message ids, so that a copy that did arrive twice is one message
to consumers that deduplicate on the id (the at-least-once promise).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.db import Database
from conveyor.db.tables import idempotency_keys as keys
from conveyor.exceptions import BadRequest, Conflict, ValidationError
from conveyor.queues.base import now_ms

RETENTION_MS = 24 * 3600 * 1000
STALE_AFTER_MS = 60 * 1000
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise BadRequest("Idempotency-Key must be 1-255 visible ASCII characters")
    return key


@dataclass(frozen=True)
class Scope:
    """Where a key applies: keys of different API keys, queues or endpoints never meet."""

    api_key: str
    queue_id: str
    #: "publish" or "publish-batch".
    endpoint: str

    def where(self, key: str) -> Any:
        return and_(
            keys.c.api_key_id == self.api_key,
            keys.c.queue_id == self.queue_id,
            keys.c.endpoint == self.endpoint,
            keys.c.key == key,
        )


class IdempotencyKeyReused(ValidationError):
    """This Idempotency-Key was used with another request body."""

    code = "idempotency_key_reused"


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Attempt:
    #: The first answer: give it again and publish nothing.
    answer: dict[str, Any] | None
    #: Otherwise, the message ids to publish under.
    message_ids: list[str]


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def begin(self, scope: Scope, key: str, body: bytes, message_ids: list[str]) -> Attempt:
        """The first answer if there is one; otherwise reserve the key, and publish under
        the message ids of its earlier attempt if there was one (else `message_ids`)."""
        row_of = scope.where(key)
        now = now_ms()
        sent = fingerprint(body)
        async with self._db.write() as conn:
            row = (await conn.execute(select(keys).where(row_of))).first()
            if row is not None:
                if row.fingerprint != sent:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used with another request body; "
                        "use a new key for a new message"
                    )
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
                        api_key_id=scope.api_key,
                        queue_id=scope.queue_id,
                        endpoint=scope.endpoint,
                        key=key,
                        fingerprint=sent,
                        created_at=now,
                        message_ids=message_ids,
                    )
                )
            except IntegrityError:  # a concurrent request reserved it first
                raise Conflict("a request with this Idempotency-Key is still in progress") from None
        return Attempt(None, message_ids)

    async def complete(self, scope: Scope, key: str, response: dict[str, Any]) -> None:
        async with self._db.write() as conn:
            await conn.execute(update(keys).where(scope.where(key)).values(response=response))

    async def release(self, scope: Scope, key: str) -> None:
        """The attempt failed: a retry may take the key over now, keeping its ids."""
        async with self._db.write() as conn:
            await conn.execute(
                update(keys)
                .where(scope.where(key), keys.c.response.is_(None))
                .values(released_at=now_ms())
            )

    async def prune(self, retention_ms: int = RETENTION_MS) -> int:
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(keys).where(keys.c.created_at < now_ms() - retention_ms)
            )
            return result.rowcount
