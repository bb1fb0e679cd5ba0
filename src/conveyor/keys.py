"""API keys: `cvk_<keyid>_<secret>`, stored as a SHA-256 of the secret.

The secret has 256 bits of entropy, so a plain SHA-256 is enough: a database dump
yields no usable key and nothing to brute-force. Authenticated keys are cached for a
couple of seconds so that a busy API does not query the database on every request;
revocation therefore takes effect within `cache_ttl_s` in other processes (at once in
the process that revoked).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, update

from conveyor.db import Database
from conveyor.db.tables import api_keys
from conveyor.db.types import utcnow
from conveyor.exceptions import KeyNotFound, Unauthenticated, field_error
from conveyor.expiring import ExpiringCache

log = logging.getLogger(__name__)

PREFIX = "cvk"
_KEY_RE = re.compile(r"^cvk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
#: How often last-used times are written back, at most.
USAGE_FLUSH_INTERVAL_S = 15.0


class Scope(StrEnum):
    #: Everything, including managing keys, queues and tables.
    ADMIN = "admin"
    #: Publish to queues (all of them, or those listed on the key).
    PUBLISH = "publish"
    #: Read ZStorage records.
    STORAGE_READ = "storage:read"
    #: Create, update and delete ZStorage records (implies read).
    STORAGE_WRITE = "storage:write"


_IMPLIED: dict[Scope, frozenset[Scope]] = {
    Scope.ADMIN: frozenset(Scope),
    Scope.STORAGE_WRITE: frozenset({Scope.STORAGE_READ}),
}


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[Scope]
    #: Queue names a publish key is limited to; None means every queue.
    queues: tuple[str, ...] | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> ApiKey:
        return cls(
            id=row.id,
            name=row.name,
            scopes=frozenset(Scope(s) for s in row.scopes),
            queues=tuple(row.queues) if row.queues is not None else None,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )

    @property
    def prefix(self) -> str:
        return f"{PREFIX}_{self.id}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows(self, scope: Scope) -> bool:
        return any(scope == held or scope in _IMPLIED.get(held, ()) for held in self.scopes)

    def may_publish_to(self, queue_name: str) -> bool:
        if Scope.ADMIN in self.scopes:
            return True
        if not self.allows(Scope.PUBLISH):
            return False
        return self.queues is None or queue_name in self.queues


@dataclass(frozen=True)
class _Cached:
    key: ApiKey
    secret_sha256: str


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    scopes = set()
    for value in values:
        try:
            scopes.add(Scope(value))
        except ValueError:
            allowed = ", ".join(s.value for s in Scope)
            raise field_error("scopes", f"unknown scope {value!r} (allowed: {allowed})") from None
    if not scopes:
        raise field_error("scopes", "give at least one scope")
    return frozenset(scopes)


class KeyStore:
    """Creates, lists, revokes and authenticates API keys."""

    def __init__(
        self,
        db: Database,
        *,
        cache_ttl_s: float = 2.0,
        cache_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache: ExpiringCache[str, _Cached | None] = ExpiringCache(
            cache_ttl_s, clock=cache_clock
        )
        self._cache_enabled = cache_ttl_s > 0
        self._loading: dict[str, asyncio.Future[_Cached | None]] = {}
        #: Key id → when it was last used (epoch seconds; a datetime costs more to make).
        self._used: dict[str, float] = {}

    async def create(
        self, name: str, scopes: Iterable[str], queues: Iterable[str] | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its token; the token is never shown again."""
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise field_error("name", "give a name of 1 to 200 characters")
        scope_set = parse_scopes(scopes)
        queue_list = tuple(dict.fromkeys(q.strip() for q in queues)) if queues else None
        if queue_list is not None and Scope.PUBLISH not in scope_set:
            raise field_error("queues", "a queue list only applies to keys with the publish scope")
        keyid, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        key = ApiKey(keyid, name, scope_set, queue_list, utcnow(), None, None)
        async with self._db.write() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=key.id,
                    name=key.name,
                    secret_sha256=_sha256(secret),
                    scopes=sorted(key.scopes),
                    queues=list(queue_list) if queue_list is not None else None,
                    created_at=key.created_at,
                )
            )
        return key, f"{PREFIX}_{keyid}_{secret}"

    async def list(self) -> list[ApiKey]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(api_keys).order_by(api_keys.c.created_at))
            return [ApiKey.from_row(row) for row in rows]

    async def get(self, keyid: str) -> ApiKey:
        async with self._db.read() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == keyid))).first()
        if row is None:
            raise KeyNotFound(f"no API key with id {keyid!r}")
        return ApiKey.from_row(row)

    async def count_active(self) -> int:
        query = select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def revoke(self, keyid: str) -> ApiKey:
        key = await self.get(keyid)
        if not key.revoked:
            key = replace(key, revoked_at=utcnow())
            async with self._db.write() as conn:
                await conn.execute(
                    update(api_keys).where(api_keys.c.id == keyid).values(revoked_at=key.revoked_at)
                )
        self._cache.pop(keyid)
        return key

    async def authenticate(self, token: str) -> ApiKey:
        """The key a bearer token belongs to, or Unauthenticated (always the same error)."""
        match = _KEY_RE.match(token)
        if match is None:
            raise Unauthenticated()
        keyid, secret = match.groups()
        cached = await self._lookup(keyid)
        # Compare even when the key is unknown so that timing tells nothing.
        expected = cached.secret_sha256 if cached else "0" * 64
        valid = hmac.compare_digest(expected, _sha256(secret))
        if cached is None or not valid or cached.key.revoked:
            raise Unauthenticated()
        self._used[keyid] = time.time()
        return cached.key

    async def _lookup(self, keyid: str) -> _Cached | None:
        found = self._cache.lookup(keyid)
        if found is not None:
            return found[0]
        # Concurrent misses for one key share a single query; the shared task is
        # shielded so that a cancelled request does not cancel the others' lookup.
        task = self._loading.get(keyid)
        if task is None:
            task = asyncio.ensure_future(self._load(keyid))
            self._loading[keyid] = task
            task.add_done_callback(lambda _: self._loading.pop(keyid, None))
        return await asyncio.shield(task)

    async def _load(self, keyid: str) -> _Cached | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == keyid))).first()
        loaded = _Cached(ApiKey.from_row(row), row.secret_sha256) if row is not None else None
        if self._cache_enabled:
            self._cache.put(keyid, loaded)  # unknown ids too, as None
        return loaded

    async def flush_usage(self) -> None:
        """Write the last-used times gathered since the previous flush."""
        if not self._used:
            return
        used, self._used = self._used, {}
        statement = (
            update(api_keys)
            .where(api_keys.c.id == bindparam("keyid"))
            .values(last_used_at=bindparam("used_at"))
        )
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    statement,
                    [
                        {"keyid": k, "used_at": datetime.fromtimestamp(t, UTC)}
                        for k, t in used.items()
                    ],
                )
        except BaseException:
            self._used = used | self._used  # try again next time
            raise

    async def run_usage_flusher(self, interval_s: float = USAGE_FLUSH_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.flush_usage()
            except Exception:
                log.warning("could not record API key usage; will retry", exc_info=True)
