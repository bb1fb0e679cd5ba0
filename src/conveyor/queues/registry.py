"""The queue registry: registered queues, their options and encrypted credentials."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.crypto import SecretBox
from conveyor.db import Database
from conveyor.db.tables import messages, queues
from conveyor.db.types import utcnow
from conveyor.exceptions import Conflict, QueueNotFound, ValidationError, field_error
from conveyor.expiring import ExpiringCache
from conveyor.queues import addresses
from conveyor.queues.model import (
    Credentials,
    Queue,
    QueueOptions,
    QueueType,
    check_name,
    check_url,
    foreign_options,
    own_options,
)

#: The fields a client may set; everything else is managed by Conveyor.
EDITABLE = ("name", "type", "url", "username", "password", "region", "description", "options")


class QueueRegistry:
    """Create, read, update and delete registered queues.

    Look-ups are cached for `cache_ttl_s` (publishing resolves a queue per request);
    changes made through this registry are visible at once in this process.
    """

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        cache_ttl_s: float = 2.0,
        deny_private_urls: bool = False,
    ) -> None:
        self._db = db
        self._box = box
        #: Refuse URLs that resolve to private addresses (`addresses.py`).
        self.deny_private_urls = deny_private_urls
        self._cache: ExpiringCache[tuple[str, str], Queue | None] = ExpiringCache(cache_ttl_s)
        self._caching = cache_ttl_s > 0
        #: Called with a queue's id once it has been edited or deleted (`on_change`).
        self._changed: list[Callable[[str], Awaitable[None]]] = []

    def on_change(self, callback: Callable[[str], Awaitable[None]]) -> None:
        """Have `callback(queue_id)` run after each edit or deletion of a queue in this
        process (the backend pool closes the queue's clients so)."""
        self._changed.append(callback)

    async def _announce(self, queue_id: str) -> None:
        for callback in self._changed:
            await callback(queue_id)

    async def create(self, spec: Mapping[str, Any]) -> Queue:
        unknown = set(spec) - set(EDITABLE)
        if unknown:
            raise _problems([(f, "unknown field") for f in sorted(unknown)])
        values = self._validated({"type": None, **spec}, given_options=_keys(spec))
        await self._refuse_private(values)
        now = utcnow()
        values |= {"id": secrets.token_hex(10), "created_at": now, "updated_at": now}
        try:
            async with self._db.write() as conn:
                await conn.execute(insert(queues).values(values))
        except IntegrityError as exc:
            raise Conflict(f"a queue named {values['name']!r} exists already") from exc
        self._forget()
        return await self.get(values["id"])

    async def update(self, queue_id: str, changes: Mapping[str, Any]) -> Queue:
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise _problems([(f, "unknown field") for f in sorted(unknown)])
        current = await self.get(queue_id)
        given = _keys(changes)
        merged: dict[str, Any] = {
            "name": current.name,
            "type": current.type.value,
            "url": current.url,
            "username": current.username,
            "region": current.region,
            "description": current.description,
            "options": current.options.model_dump(),
        }
        if "options" in changes and isinstance(changes["options"], dict):
            # Options merge key by key; null removes one (back to its default).
            options = {**merged["options"], **changes["options"]}
            changes = {**changes, "options": {k: v for k, v in options.items() if v is not None}}
        values = self._validated({**merged, **changes}, given_options=given)
        await self._refuse_private(values)
        values["updated_at"] = utcnow()
        try:
            async with self._db.write() as conn:
                await conn.execute(update(queues).where(queues.c.id == queue_id).values(values))
        except IntegrityError as exc:
            raise Conflict(f"a queue named {values['name']!r} exists already") from exc
        self._forget()
        await self._announce(queue_id)
        return await self.get(queue_id)

    async def delete(self, queue_id: str, *, force: bool = False) -> Queue:
        queue = await self.get(queue_id)
        async with self._db.write() as conn:
            if not force:
                # Messages waiting or being handled; dead letters go with the queue.
                held = select(func.count()).where(
                    messages.c.queue_id == queue_id, messages.c.state != "dead"
                )
                count = (await conn.execute(held)).scalar_one()
                if count:
                    raise Conflict(
                        f"queue {queue.name!r} still holds {count} message(s) waiting or "
                        "being handled; let its workers drain it, or force the deletion "
                        "(API: ?force=true, CLI: --force)"
                    )
            await conn.execute(delete(queues).where(queues.c.id == queue_id))
        self._forget()
        await self._announce(queue_id)
        return queue

    async def list(self, queue_type: QueueType | None = None) -> list[Queue]:
        query = select(queues).order_by(queues.c.name)
        if queue_type is not None:
            query = query.where(queues.c.type == queue_type.value)
        async with self._db.read() as conn:
            return [Queue.from_row(row) for row in await conn.execute(query)]

    async def get(self, queue_id: str, *, conn: AsyncConnection | None = None) -> Queue:
        """The queue; inside a transaction pass its `conn`, so the look-up needs no
        second connection from the pool."""
        return await self._find("id", queue_id, conn)

    async def get_by_name(self, name: str) -> Queue:
        return await self._find("name", name)

    async def find(self, id_or_name: str) -> Queue:
        """By id, else by name (the CLI accepts either)."""
        try:
            return await self.get(id_or_name)
        except QueueNotFound:
            return await self.get_by_name(id_or_name)

    async def credentials(self, queue: Queue) -> Credentials:
        """The decrypted credentials; call only when connecting."""
        async with self._db.read() as conn:
            query = select(queues.c.password_encrypted).where(queues.c.id == queue.id)
            token = (await conn.execute(query)).scalar_one_or_none()
        return Credentials(queue.username, self._box.decrypt(token) if token else None)

    async def _find(self, column: str, value: str, conn: AsyncConnection | None = None) -> Queue:
        key = (column, value)
        if not self._caching:
            queue = await self._load(column, value, conn)
        else:
            found = self._cache.lookup(key)
            if found is not None:
                queue = found[0]
            else:
                queue = await self._load(column, value, conn)
                self._cache.put(key, queue)
        if queue is None:
            # The same text as for a queue a key may not see (the publish API): no probing.
            raise QueueNotFound(f"no queue {value!r}")
        return queue

    async def _load(self, column: str, value: str, conn: AsyncConnection | None) -> Queue | None:
        query = select(queues).where(queues.c[column] == value)
        if conn is not None:
            row = (await conn.execute(query)).first()
        else:
            async with self._db.read() as own:
                row = (await own.execute(query)).first()
        return Queue.from_row(row) if row is not None else None

    async def _refuse_private(self, values: Mapping[str, Any]) -> None:
        if self.deny_private_urls and values.get("url"):
            problem = await addresses.private_problem(QueueType(values["type"]), values["url"])
            if problem is not None:
                raise _problems([("url", problem)])

    def _forget(self) -> None:
        self._cache.clear()

    def _validated(self, spec: Mapping[str, Any], *, given_options: set[str]) -> dict[str, Any]:
        """Column values for `spec`, or one ValidationError listing every problem."""
        problems: list[tuple[str, str]] = []
        values: dict[str, Any] = {}

        def attempt(field: str, check: Any) -> Any:
            try:
                return check()
            except ValidationError as exc:
                problems.extend((d["field"], d["message"]) for d in exc.details or [])
            except (TypeError, ValueError) as exc:
                problems.append((field, str(exc)))
            return None

        values["name"] = attempt("name", lambda: check_name(spec.get("name")))  # type: ignore[arg-type]
        queue_type = attempt("type", lambda: _queue_type(spec.get("type")))
        values["type"] = queue_type.value if queue_type else None
        username, password = _text(spec, "username", 255, problems), None
        if isinstance(spec.get("password"), str):
            password = spec["password"] or None
        elif spec.get("password") is not None:
            problems.append(("password", "must be a string"))
        if queue_type is not None:
            url = attempt(
                "url",
                lambda: check_url(queue_type, spec.get("url"), deny_private=self.deny_private_urls),
            )
            url, url_username, url_password = _split_credentials(url)
            values["url"] = url
            username = username or url_username
            password = password or url_password
            region = _text(spec, "region", 64, problems)
            if queue_type is QueueType.SQS and not region:
                problems.append(("region", "an SQS queue needs a region, e.g. us-east-1"))
            values["region"] = region
        values["username"] = username
        values["description"] = _text(spec, "description", 10_000, problems)
        options = attempt("options", lambda: QueueOptions.parse(spec.get("options") or {}))
        values["options"] = None
        if options is not None and queue_type is not None:
            problems.extend(foreign_options(queue_type, options, given_options))
            values["options"] = own_options(queue_type, options)
        if problems:
            raise _problems(problems)
        if password:
            values["password_encrypted"] = self._box.encrypt(password)
        elif "password" in spec:  # an explicit null clears it; absent leaves it alone
            values["password_encrypted"] = None
        return values


def _keys(spec: Mapping[str, Any]) -> set[str]:
    """The option names a client gave."""
    options = spec.get("options")
    return set(options) if isinstance(options, dict) else set()


def _queue_type(value: Any) -> QueueType:
    try:
        return QueueType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in QueueType)
        raise field_error("type", f"must be one of {allowed}") from None


def _text(
    spec: Mapping[str, Any], field: str, limit: int, problems: list[tuple[str, str]]
) -> str | None:
    value = spec.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        problems.append((field, f"must be a string of at most {limit} characters"))
        return None
    return value.strip() or None


def _split_credentials(url: str | None) -> tuple[str | None, str | None, str | None]:
    """A URL's user and password, taken out so that only the encrypted copy is stored."""
    if url is None or "://" not in url:
        return url, None, None
    url, query_password = _split_query_password(url)
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url, None, query_password
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else query_password
    return urlunsplit(parts._replace(netloc=netloc)), username, password


def _split_query_password(url: str) -> tuple[str, str | None]:
    """`?password=...` taken out of the URL's query (the last one wins)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = [value for name, value in pairs if name.lower() == "password"]
    if not secret:
        return url, None
    kept = [(name, value) for name, value in pairs if name.lower() != "password"]
    return urlunsplit(parts._replace(query=urlencode(kept))), secret[-1] or None


def _problems(problems: list[tuple[str, str]]) -> ValidationError:
    details = [{"field": f, "message": m} for f, m in problems]
    return ValidationError("; ".join(f"{f}: {m}" for f, m in problems), details=details)
