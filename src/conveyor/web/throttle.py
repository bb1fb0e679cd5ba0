"""Login throttling: exponential lockout per client address and per (username, address).

Why not per username alone: anyone could then lock a known operator out by failing
logins on purpose (a lockout denial of service). Instead:

- a (username, address) pair gets `PAIR_FREE_FAILURES` free failures, then is locked
  for 1 s, 2 s, 4 s, … up to `MAX_LOCK_S`: guessing one password from one address is
  slowed to a crawl, while the real user, from their own address, is not affected;
- an address gets `ADDRESS_FREE_FAILURES` (shared offices sit behind one address), then
  the same exponential lock: one address cannot spray many usernames either;
- every attempt costs an argon2id verification, and failures are forgotten
  `FORGET_AFTER` (an hour) after the last one.

A distributed guesser (many addresses against one username) remains possible; it is
bounded by the argon2id cost and the minimum password length, and shows in the log.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.db import Database
from conveyor.db.tables import login_failures
from conveyor.db.types import utcnow

log = logging.getLogger(__name__)

PAIR_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
MAX_LOCK_S = 15 * 60
#: Longer than the longest lock, so a guesser who waits out a lock meets the next one.
FORGET_AFTER = timedelta(hours=1)


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def lock_seconds(failures: int, free: int) -> int:
    """How long a key with `failures` failures is locked (0: not at all)."""
    if failures <= free:
        return 0
    return int(min(2 ** (failures - free - 1), MAX_LOCK_S))


class LoginThrottle:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _keys(self, username: str, address: str) -> dict[str, int]:
        return {
            _key("pair", username.lower(), address): PAIR_FREE_FAILURES,
            _key("address", address): ADDRESS_FREE_FAILURES,
        }

    async def retry_after_s(self, username: str, address: str) -> int:
        """Seconds until a login attempt is allowed again (0: allowed now)."""
        keys = list(self._keys(username, address))
        query = select(login_failures.c.locked_until).where(login_failures.c.key_sha256.in_(keys))
        async with self._db.read() as conn:
            locks = [row.locked_until for row in await conn.execute(query) if row.locked_until]
        now = utcnow()
        return max(
            (int((until - now).total_seconds()) + 1 for until in locks if until > now), default=0
        )

    async def failed(self, username: str, address: str) -> None:
        now = utcnow()
        for key, free in self._keys(username, address).items():
            # A concurrent first failure may insert the row first: then one goes uncounted.
            with contextlib.suppress(IntegrityError):
                await self._count(key, free, now)
        log.warning("failed back-office login for %r from %s", username[:150], address)

    async def _count(self, key: str, free: int, now: datetime) -> None:
        row_of = login_failures.c.key_sha256 == key
        async with self._db.write() as conn:
            row = (await conn.execute(select(login_failures).where(row_of))).first()
            failures = 1
            if row is not None and now - row.last_failure_at < FORGET_AFTER:
                failures = row.failures + 1
            seconds = lock_seconds(failures, free)
            values = {
                "failures": failures,
                "last_failure_at": now,
                "locked_until": now + timedelta(seconds=seconds) if seconds else None,
            }
            if row is None:
                await conn.execute(insert(login_failures).values(key_sha256=key, **values))
            else:
                await conn.execute(update(login_failures).where(row_of).values(values))

    async def succeeded(self, username: str, address: str) -> None:
        pair = _key("pair", username.lower(), address)
        async with self._db.write() as conn:
            await conn.execute(delete(login_failures).where(login_failures.c.key_sha256 == pair))
            # Forget stale rows while we are here; the table stays small.
            await conn.execute(
                delete(login_failures).where(
                    login_failures.c.last_failure_at < utcnow() - FORGET_AFTER
                )
            )
