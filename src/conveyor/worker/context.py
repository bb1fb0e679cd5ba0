"""What a handler receives: `context.message`, `context.runtime` and the batteries.

```python
@handler("send_welcome")
async def send_welcome(context: Context) -> None:
    user = context.message.payload["user"]
    await context.mail.send(user["email"], "Welcome", "Hello!")
    await context.publish("audit", {"handler": "record", "event": "welcomed"})
    context.log.info("welcomed", user=user["id"])
    context.runtime.ack_message()
```
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.exceptions import ConveyorError
from conveyor.queues import headers as parse
from conveyor.storage.records import Records

if TYPE_CHECKING:
    import httpx

    from conveyor.config import Settings
    from conveyor.platform import Platform
    from conveyor.worker.logs import StructuredLog
    from conveyor.worker.mail import Mailer

T = TypeVar("T")

#: How many handlers in a row published the message (see `Context.publish`).
HEADER_HOPS = "conveyor-hops"
#: Handlers publishing a message in a row, at most.
MAX_HOPS = 100


class HopLimitExceeded(ConveyorError):
    """A handler's publish went past MAX_HOPS: handlers publishing in a loop?"""


@dataclass(frozen=True)
class Message:
    """The message being handled."""

    #: Conveyor's message id: the same on every attempt and after a redrive.
    id: str
    #: The decoded JSON object (it holds the `"handler"` field too).
    payload: dict[str, Any]
    #: 1 on the first delivery, 2 on the first retry, …
    attempt: int
    #: The name of the queue it came from.
    queue: str
    headers: Mapping[str, str]
    published_at: datetime
    #: The handler name it was dispatched on.
    handler: str

    @property
    def hops(self) -> int:
        """Handlers that published the messages leading to this one (0: published
        from outside a handler)."""
        return parse.bounded(
            self.headers.get(HEADER_HOPS), 0, MAX_HOPS, header=HEADER_HOPS, message_id=self.id
        )


class Runtime:
    """The handler's line to the worker about the message being handled."""

    def __init__(self, *, max_attempts: int, worker_id: str) -> None:
        self._acked = False
        #: Attempts the queue allows before dead-lettering.
        self.max_attempts = max_attempts
        self.worker_id = worker_id

    def ack_message(self) -> None:
        """Done: the worker removes the message from the queue when the handler returns.

        A handler that raises after acking is still retried: it did not finish.
        """
        self._acked = True

    @property
    def acked(self) -> bool:
        return self._acked


@dataclass(frozen=True)
class Batteries:
    """What every context shares within one worker process."""

    platform: Platform
    http: httpx.AsyncClient
    mail: Mailer
    loop: asyncio.AbstractEventLoop


class Context:
    """Everything a handler gets: the message, the runtime and the batteries."""

    def __init__(
        self, message: Message, runtime: Runtime, batteries: Batteries, log: StructuredLog
    ) -> None:
        self.message = message
        self.runtime = runtime
        #: Structured logger; every line carries the message id, handler and attempt.
        self.log = log
        self._batteries = batteries

    @property
    def http(self) -> httpx.AsyncClient:
        """A shared `httpx.AsyncClient` (connection pooling, 30 s timeouts)."""
        return self._batteries.http

    @property
    def mail(self) -> Mailer:
        """`await context.mail.send(to, subject, text, html=…)` via `CONVEYOR_SMTP_*`."""
        return self._batteries.mail

    @property
    def settings(self) -> Settings:
        """The worker's settings (`CONVEYOR_*`); secrets stay wrapped in SecretStr."""
        return self._batteries.platform.settings

    @property
    def storage(self) -> Records:
        """The ZStorage records API: `await context.storage.create("table", {...})`,
        `.get(table, id)`, `.update(table, id, {...})`, `.delete(table, id)`,
        `.query(table, [("field[gte]", "18"), ("sort", "-field")])`. Writes run the
        same validation and table→queue links as the HTTP API."""
        return self._batteries.platform.storage.records

    async def publish(self, queue: str, payload: Mapping[str, Any]) -> dict[str, str]:
        """Publish a JSON object to a registered queue (by name or id); the API's answer.

        The message carries `conveyor-hops`, one more than the message being handled:
        past `MAX_HOPS` the publish is refused (`HopLimitExceeded`), so handlers that
        publish to each other (or to their own queue) cannot loop for ever."""
        hops = self.message.hops + 1
        if hops > MAX_HOPS:
            raise HopLimitExceeded(
                f"message {self.message.id} was published by handlers {MAX_HOPS} times "
                "in a row: a loop? (see conveyor-hops)"
            )
        platform = self._batteries.platform
        target = await platform.queues.find(queue)
        answer: dict[str, str] = await platform.publisher.publish_object(
            target, dict(payload), headers={HEADER_HOPS: str(hops)}
        )
        return answer

    def run(self, awaitable: Awaitable[T]) -> T:
        """From a plain (thread-pool) handler, run an async battery and wait for it:
        `context.run(context.publish("audit", {...}))`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run_coroutine_threadsafe(_wrap(awaitable), self._batteries.loop).result()
        _close_unawaited(awaitable)
        raise RuntimeError("context.run() is for plain handlers; in async ones use await")


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _close_unawaited(awaitable: Awaitable[Any]) -> None:
    if isinstance(awaitable, Coroutine):
        awaitable.close()
