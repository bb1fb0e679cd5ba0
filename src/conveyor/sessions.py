"""Server-side back-office sessions: the store behind the back-office's sign-in.

The cookie holds a random 256-bit session id; the database holds only its SHA-256, so
a dump yields no usable session. A session ends after `idle_timeout_s` without a
request, `max_age_s` after the login whatever the activity, or at logout.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, insert, or_, select, update

from conveyor.db import Database
from conveyor.db.tables import sessions, users
from conveyor.db.types import utcnow
from conveyor.users import Role, User

#: `last_seen_at` is written at most this often per session (not on every page view).
TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class Session:
    id_sha256: str
    user: User
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


def _sha256(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, db: Database, *, idle_timeout_s: int, max_age_s: int) -> None:
        self._db = db
        self.idle_timeout = timedelta(seconds=idle_timeout_s)
        self.max_age = timedelta(seconds=max_age_s)

    async def create(self, user: User) -> tuple[Session, str]:
        """A new session for `user` and its id (the cookie value), shown only now."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        session = Session(_sha256(session_id), user, secrets.token_urlsafe(32), now, now)
        async with self._db.write() as conn:
            await conn.execute(delete(sessions).where(self._expired(now)))
            await conn.execute(
                insert(sessions).values(
                    id_sha256=session.id_sha256,
                    user_id=user.id,
                    csrf_token=session.csrf_token,
                    created_at=now,
                    last_seen_at=now,
                )
            )
        return session, session_id

    async def get(self, session_id: str) -> Session | None:
        """The live session with this id (its last-seen time refreshed), or None."""
        if not session_id or len(session_id) > 128:
            return None
        digest = _sha256(session_id)
        query = (
            select(
                sessions.c.created_at,
                sessions.c.last_seen_at,
                sessions.c.csrf_token,
                users.c.id,
                users.c.username,
                users.c.is_active,
                users.c.created_at.label("user_created_at"),
                users.c.last_login_at,
                users.c.role,
            )
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.id_sha256 == digest)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        now = utcnow()
        if not row.is_active or self._is_expired(row.created_at, row.last_seen_at, now):
            await self.delete(session_id)
            return None
        if now - row.last_seen_at > TOUCH_INTERVAL:
            async with self._db.write() as conn:
                await conn.execute(
                    update(sessions).where(sessions.c.id_sha256 == digest).values(last_seen_at=now)
                )
        user = User(
            row.id,
            row.username,
            row.is_active,
            row.user_created_at,
            row.last_login_at,
            Role(row.role),
        )
        return Session(digest, user, row.csrf_token, row.created_at, now)

    async def delete(self, session_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(delete(sessions).where(sessions.c.id_sha256 == _sha256(session_id)))

    async def delete_for_user(self, user_id: int) -> int:
        """End every session of a user (after a password change or a deactivation)."""
        async with self._db.write() as conn:
            return (
                await conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
            ).rowcount

    def _is_expired(self, created_at: datetime, last_seen_at: datetime, now: datetime) -> bool:
        return now - created_at > self.max_age or now - last_seen_at > self.idle_timeout

    def _expired(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            sessions.c.created_at < now - self.max_age,
            sessions.c.last_seen_at < now - self.idle_timeout,
        )
