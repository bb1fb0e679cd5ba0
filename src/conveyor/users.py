"""Back-office users, with argon2id password hashes."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.db import Database
from conveyor.db.tables import users
from conveyor.db.types import utcnow
from conveyor.exceptions import Conflict, field_error

_USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,150}$")
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> User:
        return cls(row.id, row.username, row.is_active, row.created_at, row.last_login_at)


class UserStore:
    def __init__(self, db: Database, hasher: PasswordHasher | None = None) -> None:
        self._db = db
        self._hasher = hasher or PasswordHasher()  # argon2id with the library's defaults

    async def create(self, username: str, password: str) -> User:
        if not _USERNAME_RE.match(username):
            raise field_error("username", "use 1-150 letters, digits or _ . @ -")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise field_error("password", f"use at least {MIN_PASSWORD_LENGTH} characters")
        now = utcnow()
        values = {
            "username": username,
            "password_hash": await asyncio.to_thread(self._hasher.hash, password),
            "is_active": True,
            "created_at": now,
        }
        try:
            async with self._db.write() as conn:
                result = await conn.execute(insert(users).values(values).returning(users.c.id))
                user_id = result.scalar_one()
        except IntegrityError as exc:
            raise Conflict(f"a user named {username!r} exists already") from exc
        return User(user_id, username, True, now, None)

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user, when the password matches an active account; None otherwise."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        if row is None:
            # Hash anyway so that unknown names take as long as wrong passwords.
            await asyncio.to_thread(self._hasher.hash, password)
            return None
        try:
            await asyncio.to_thread(self._hasher.verify, row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if not row.is_active:
            return None
        async with self._db.write() as conn:
            await conn.execute(
                update(users).where(users.c.id == row.id).values(last_login_at=utcnow())
            )
        return User.from_row(row)
