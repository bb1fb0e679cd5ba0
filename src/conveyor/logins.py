"""Login throttling: exponential lockout per client address and per (username, address).

Why not per username alone: anyone could then lock a known operator out by failing
logins on purpose (a lockout denial of service). Instead:

- a (username, address) pair gets `PAIR_FREE_FAILURES` free failures, then is locked
  for 1 s, 2 s, 4 s, … up to `MAX_LOCK_S`: guessing one password from one address is
  slowed to a crawl, while the real user, from their own address, is not affected;
- an address gets `ADDRESS_FREE_FAILURES` (shared offices sit behind one address), then
  the same exponential lock: one address cannot spray many usernames either;
- every attempt is counted before its password is checked, in one atomic statement,
  so parallel guesses cannot slip past the count; a success takes its count back;
- every attempt costs an argon2id verification, and failures are forgotten
  `FORGET_AFTER` (an hour) after the last one.

A distributed guesser (many addresses against one username) remains possible; it is
bounded by the argon2id cost and the minimum password length, and shows in the log.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

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

    async def attempt(self, username: str, address: str) -> int:
        """Count a login attempt, before its password is checked: the seconds to wait
        (the attempt is refused), or 0 (go on and check it).

        Each attempt counts as a failure until `succeeded` says otherwise, so that
        parallel guesses are counted too: the count is one atomic statement, and only
        one attempt may go through when a lock ends (a compare-and-set on the lock).
        """
        wait_s = 0
        for key, free in self._keys(username, address).items():
            wait_s = max(wait_s, await self._attempt(key, free))
        return wait_s

    async def _attempt(self, key: str, free: int) -> int:
        now = utcnow()
        table = login_failures
        insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
        stale = table.c.last_failure_at < now - FORGET_AFTER
        count = (
            insert(table)
            .values(key_sha256=key, failures=1, last_failure_at=now, locked_until=None)
            .on_conflict_do_update(
                index_elements=[table.c.key_sha256],
                set_={
                    "failures": case((stale, 1), else_=table.c.failures + 1),
                    "locked_until": case((stale, None), else_=table.c.locked_until),
                    "last_failure_at": now,
                },
            )
            .returning(table.c.failures, table.c.locked_until)
        )
        async with self._db.write() as conn:
            failures, locked_until = (await conn.execute(count)).one()
        if locked_until is not None and locked_until > now:
            return _seconds_until(locked_until, now)
        seconds = lock_seconds(failures, free)
        if seconds == 0:
            return 0
        # Over the free attempts: the one attempt that sets the next lock may go on.
        row = table.c.key_sha256 == key
        seen = (
            table.c.locked_until.is_(None)
            if locked_until is None
            else (table.c.locked_until == locked_until)
        )
        lock = update(table).where(row, seen).values(locked_until=now + timedelta(seconds=seconds))
        async with self._db.write() as conn:
            won = (await conn.execute(lock)).rowcount == 1
            current = (await conn.execute(select(table.c.locked_until).where(row))).scalar()
        if won:
            return 0
        return _seconds_until(current, now) if current is not None else 1

    def failed(self, username: str, address: str) -> None:
        """The password was wrong (the attempt was counted already)."""
        log.warning("failed back-office login for %r from %s", username[:150], address)

    async def succeeded(self, username: str, address: str) -> None:
        pair = _key("pair", username.lower(), address)
        by_address = login_failures.c.key_sha256 == _key("address", address)
        async with self._db.write() as conn:
            await conn.execute(delete(login_failures).where(login_failures.c.key_sha256 == pair))
            # This attempt was counted against the address too: take it back.
            await conn.execute(
                update(login_failures)
                .where(by_address, login_failures.c.failures > 0)
                .values(failures=login_failures.c.failures - 1)
            )
            # Forget stale rows while we are here; the table stays small.
            await conn.execute(
                delete(login_failures).where(
                    login_failures.c.last_failure_at < utcnow() - FORGET_AFTER
                )
            )


def _seconds_until(when: datetime, now: datetime) -> int:
    return int((when - now).total_seconds()) + 1
