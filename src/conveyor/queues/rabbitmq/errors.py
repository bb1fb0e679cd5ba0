"""Driver exceptions become Conveyor's own, here and nowhere else.

Every call into aio-pika runs inside `translated(...)`, which also bounds it in time:
a broker that is down or silent gives a `ConnectionFailed` (HTTP 503) within the
timeout, never a hang. Messages name the host, port, virtual host and user, never the
password.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from types import TracebackType

from aiormq import exceptions as amqp

from conveyor.exceptions import BackendError, ConnectionFailed, ConveyorError, PublishFailed


@dataclass(frozen=True)
class Peer:
    """Who we talk to, for error messages."""

    host: str
    port: int
    vhost: str
    username: str
    #: Never shown; scrubbed from any driver text that might echo it.
    password: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port} (virtual host {self.vhost!r})"

    def scrub(self, text: str) -> str:
        text = text[:500]
        return text.replace(self.password, "***") if self.password else text


class translated:
    """`async with translated(peer, action, timeout_s=…):` maps what the driver raises
    in the block and bounds the block in time (`enforce=False`: the calls in the block
    carry `timeout_s` themselves). A class, not a generator: it wraps every publish."""

    __slots__ = ("_action", "_peer", "_timeout", "_timeout_s")

    def __init__(self, peer: Peer, action: str, *, timeout_s: float, enforce: bool = True) -> None:
        self._peer = peer
        self._action = action
        self._timeout_s = timeout_s
        self._timeout = asyncio.timeout(timeout_s) if enforce else None

    async def __aenter__(self) -> None:
        if self._timeout is not None:
            await self._timeout.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._timeout is not None:
            try:
                await self._timeout.__aexit__(kind, exc, tb)
            except TimeoutError as timeout:
                raise translate(timeout, self._peer, self._action, self._timeout_s) from timeout
        if isinstance(exc, asyncio.CancelledError) and not _cancelling():
            # Not a cancellation of this task: aiormq cancels the futures of a channel
            # or connection that closed under the call (the backend was closed, say).
            raise ConnectionFailed(
                f"the connection to RabbitMQ at {self._peer} closed while {self._action}"
            ) from exc
        if exc is None or isinstance(exc, ConveyorError) or not isinstance(exc, Exception):
            return False
        raise translate(exc, self._peer, self._action, self._timeout_s) from exc


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def translate(exc: Exception, peer: Peer, action: str, timeout_s: float) -> BackendError:
    # Most specific first: aiormq's classes inherit from each other and from OSError.
    text = peer.scrub(str(exc) or type(exc).__name__)
    if isinstance(exc, amqp.PublishError):
        return PublishFailed(f"RabbitMQ could not route the message while {action}: {text}")
    if isinstance(exc, amqp.DeliveryError):
        return PublishFailed(f"RabbitMQ refused the message while {action} (negative confirm)")
    if isinstance(exc, amqp.ProbableAuthenticationError | amqp.AuthenticationError):
        return ConnectionFailed(
            f"RabbitMQ at {peer} refused the login of user {peer.username!r}: "
            "wrong username or password?"
        )
    if isinstance(exc, amqp.InvalidFrameError | amqp.ConnectionNotAllowed):
        return ConnectionFailed(
            f"RabbitMQ at {peer} closed the connection while opening it: does the virtual "
            f"host exist, and may user {peer.username!r} use it?"
        )
    if isinstance(exc, amqp.ChannelAccessRefused):
        return BackendError(f"RabbitMQ refused access while {action}: {text}")
    if isinstance(exc, amqp.ChannelNotFoundEntity):
        return BackendError(f"a RabbitMQ queue is missing ({action}): {text}")
    if isinstance(exc, amqp.ChannelPreconditionFailed):
        return BackendError(f"RabbitMQ refused {action}: {text}")
    if isinstance(exc, TimeoutError):
        return ConnectionFailed(
            f"RabbitMQ at {peer} did not answer within {timeout_s:g} s while {action}"
        )
    if isinstance(
        exc,
        amqp.ChannelInvalidStateError | amqp.ChannelClosed | amqp.ConnectionClosed | RuntimeError,
    ):
        return ConnectionFailed(
            f"the connection to RabbitMQ at {peer} is down ({action}); reconnecting"
        )
    if isinstance(exc, OSError):
        reason = os.strerror(exc.errno) if isinstance(exc.errno, int) else text
        return ConnectionFailed(f"cannot connect to RabbitMQ at {peer}: {reason}")
    return BackendError(f"RabbitMQ failed while {action}: {type(exc).__name__}: {text}")
