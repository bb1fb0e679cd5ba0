"""Back-office users, with argon2id password hashes and a role.

An `admin` manages everything, API keys and users included; an `operator` runs the
back-office (queues, messages, tables, records) but manages neither keys nor users.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.db import Database
from conveyor.db.tables import sessions, users
from conveyor.db.types import utcnow
from conveyor.exceptions import Conflict, NotFound, field_error

_USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,150}$")
MIN_PASSWORD_LENGTH = 8


class Role(StrEnum):
    #: Everything, including API keys and users.
    ADMIN = "admin"
    #: Queues, messages, tables and records; not API keys, not users.
    OPERATOR = "operator"


class UserNotFound(NotFound):
    """User not found."""

    code = "user_not_found"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    role: Role = Role.OPERATOR

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @classmethod
    def from_row(cls, row: Row[Any]) -> User:
        return cls(
            row.id, row.username, row.is_active, row.created_at, row.last_login_at, Role(row.role)
        )


class UserStore:
    def __init__(self, db: Database, hasher: PasswordHasher | None = None) -> None:
        self._db = db
        self._hasher = hasher or PasswordHasher()  # argon2id with the library's defaults

    async def create(self, username: str, password: str, role: Role | str = Role.ADMIN) -> User:
        if not _USERNAME_RE.match(username):
            raise field_error("username", "use 1-150 letters, digits or _ . @ -")
        _check_password(password)
        role = _role(role)
        now = utcnow()
        values = {
            "username": username,
            "password_hash": await asyncio.to_thread(self._hasher.hash, password),
            "is_active": True,
            "created_at": now,
            "role": role.value,
        }
        try:
            async with self._db.write() as conn:
                result = await conn.execute(insert(users).values(values).returning(users.c.id))
                user_id = result.scalar_one()
        except IntegrityError as exc:
            raise Conflict(f"a user named {username!r} exists already") from exc
        return User(user_id, username, True, now, None, role)

    async def list(self) -> list[User]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(users).order_by(users.c.username))
            return [User.from_row(row) for row in rows]

    async def get(self, username: str) -> User:
        async with self._db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        if row is None:
            raise UserNotFound(f"no user {username!r}")
        return User.from_row(row)

    async def set_password(self, username: str, password: str) -> User:
        """A new password; the user's sessions end (signed in elsewhere, they sign in again)."""
        _check_password(password)
        user = await self.get(username)
        digest = await asyncio.to_thread(self._hasher.hash, password)
        async with self._db.write() as conn:
            await conn.execute(
                update(users).where(users.c.id == user.id).values(password_hash=digest)
            )
            await conn.execute(delete(sessions).where(sessions.c.user_id == user.id))
        return user

    async def set_role(self, username: str, role: Role | str) -> User:
        role = _role(role)
        async with self._db.write() as conn:
            user = await self._get_for_change(conn, username)
            if user.is_admin and role is not Role.ADMIN:
                await self._keep_an_admin(conn, user)
            await conn.execute(update(users).where(users.c.id == user.id).values(role=role.value))
        return User(
            user.id, user.username, user.is_active, user.created_at, user.last_login_at, role
        )

    async def delete(self, username: str) -> User:
        """Delete a user and end their sessions; the last admin cannot be deleted."""
        async with self._db.write() as conn:
            user = await self._get_for_change(conn, username)
            if user.is_admin:
                await self._keep_an_admin(conn, user)
            await conn.execute(delete(sessions).where(sessions.c.user_id == user.id))
            await conn.execute(delete(users).where(users.c.id == user.id))
        return user

    async def _get_for_change(self, conn: Any, username: str) -> User:
        row = (await conn.execute(select(users).where(users.c.username == username))).first()
        if row is None:
            raise UserNotFound(f"no user {username!r}")
        return User.from_row(row)

    async def _keep_an_admin(self, conn: Any, user: User) -> None:
        # Inside the write transaction: two admins removing each other cannot both pass.
        others = select(func.count()).where(users.c.role == Role.ADMIN.value, users.c.id != user.id)
        if (await conn.execute(others)).scalar_one() == 0:
            raise Conflict(f"{user.username!r} is the last admin; make another admin first")

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


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise field_error("password", f"use at least {MIN_PASSWORD_LENGTH} characters")


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise field_error("role", "must be admin or operator") from None
