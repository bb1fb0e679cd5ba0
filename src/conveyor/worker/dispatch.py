"""Turning one delivery into a verdict: decode it, find its handler, run it.

Poison never reaches a handler: an undecodable body, a body that is not a JSON object,
a missing `"handler"` field or an unknown handler is dead-lettered at once with the
reason. A handler runs under a timeout; plain functions run in a thread pool and,
since a thread cannot be cancelled, a timed-out one keeps its lease until it returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

import orjson

from conveyor.exceptions import Reject, Retry
from conveyor.worker.context import Batteries, Context, Message, Runtime
from conveyor.worker.handlers import HandlerRegistry, HandlerSpec
from conveyor.worker.leases import Held
from conveyor.worker.logs import StructuredLog
from conveyor.worker.outcome import Action, Verdict, clip

#: The logger behind `context.log`, apart from the worker's own lines.
HANDLER_LOG = logging.getLogger("conveyor.handlers")
#: How long a cancelled async handler gets to unwind before the worker moves on.
CANCEL_GRACE_S = 5.0


class Poison(Exception):
    """The delivery cannot be dispatched; the message is the dead-letter reason."""

    def __init__(self, reason: str, *, handler: str | None = None) -> None:
        super().__init__(reason)
        #: The handler the message asked for, when it named one this worker lacks.
        self.handler = handler


def decode(body: bytes, registry: HandlerRegistry) -> tuple[HandlerSpec, dict[str, Any]]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Poison(f"undecodable payload (not JSON in UTF-8): {exc}") from None
    if not isinstance(payload, dict):
        raise Poison(f"the payload is a JSON {type(payload).__name__}, not an object")
    name = payload.get("handler")
    if not isinstance(name, str) or not name:
        raise Poison('the payload has no "handler" field naming its handler')
    spec = registry.get(name)
    if spec is None:
        known = ", ".join(registry.names()) or "none"
        raise Poison(
            f"no handler named {name[:200]!r} in this worker (it has: {known})", handler=name[:200]
        )
    return spec, payload


def describe(exc: BaseException) -> str:
    """`Type: message (at file:line in function)`, for logs and dead letters."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return clip(text)


class HandlerExit(Exception):
    """The handler raised KeyboardInterrupt or SystemExit: its failure, not the worker's."""


async def contained(call: Awaitable[object]) -> object:
    """Await an async handler, turning a BaseException it raises into `HandlerExit`.

    asyncio re-raises KeyboardInterrupt and SystemExit out of the event loop, which
    would stop the whole worker. A real SIGINT or SIGTERM never raises in a handler
    (the worker handles them with `loop.add_signal_handler`), so one raised here is
    the handler's own doing. Cancellation passes through.
    """
    try:
        return await call
    except (KeyboardInterrupt, SystemExit) as exc:
        raise HandlerExit(f"the handler raised {type(exc).__name__}({exc})") from exc


class Dispatcher:
    """Runs deliveries through their handlers; shared by all of a worker's tasks."""

    def __init__(
        self,
        registry: HandlerRegistry,
        batteries: Batteries,
        threads: Executor,
        log: StructuredLog,
        *,
        worker_id: str,
        backoff: Callable[[Held], float],
    ) -> None:
        self.registry = registry
        self.batteries = batteries
        self.threads = threads
        self.log = log
        self.worker_id = worker_id
        self.backoff = backoff

    async def verdict(self, held: Held) -> tuple[str | None, Verdict]:
        """The handler's name (for poison: the one asked for, if any) and what to do with
        the message."""
        delivery = held.delivery
        try:
            spec, payload = decode(delivery.body, self.registry)
        except Poison as poison:
            return poison.handler, Verdict(Action.DEAD, error=str(poison), failed=True)
        runtime = Runtime(max_attempts=held.queue.options.max_attempts, worker_id=self.worker_id)
        message = Message(
            id=delivery.id,
            payload=payload,
            attempt=delivery.attempt,
            queue=held.queue.name,
            headers=delivery.headers,
            published_at=delivery.published_at,
            handler=spec.name,
        )
        log = StructuredLog(
            HANDLER_LOG,
            {**self.log.bound, "handler": spec.name, "message_id": delivery.id},
        ).bind(attempt=delivery.attempt)
        context = Context(message, runtime, self.batteries, log)
        return spec.name, await self._run(spec, context, held)

    async def _run(self, spec: HandlerSpec, context: Context, held: Held) -> Verdict:
        timeout_s = spec.timeout_s or held.visibility_s
        future = self._start(spec, context)
        held.handler, held.handler_name = future, spec.name
        done, _ = await asyncio.wait({future}, timeout=timeout_s)
        timed_out = not done
        if timed_out and spec.is_async:
            future.cancel()
            done, _ = await asyncio.wait({future}, timeout=CANCEL_GRACE_S)
        elif timed_out:
            context.log.warning(
                "a plain handler overran its timeout; waiting for its thread to return "
                "before retrying (threads cannot be cancelled)",
                timeout_s=timeout_s,
            )
            done, _ = await asyncio.wait({future})
        if held.lost:
            return Verdict(Action.LOST, failed=timed_out)
        if not done or (held.interrupted and future.cancelled() and not spec.is_async):
            # The handler may still be running: only the lease may hand the message on.
            return Verdict(Action.ABANDON, error="the handler did not stop when cancelled")
        if held.interrupted and future.cancelled():
            return Verdict(Action.RETRY, 0.0, "interrupted: the worker shut down")
        if timed_out:
            error = f"the handler timed out after {timeout_s:g} s"
            return Verdict(Action.RETRY, self.backoff(held), error, failed=True)
        return self._judge(future, context, held)

    def _start(self, spec: HandlerSpec, context: Context) -> asyncio.Future[object]:
        if spec.is_async:
            return asyncio.ensure_future(contained(spec.function(context)))  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, spec.function, context)
        return loop.run_in_executor(self.threads, call)

    def _judge(self, future: asyncio.Future[object], context: Context, held: Held) -> Verdict:
        if future.cancelled():
            return Verdict(Action.RETRY, self.backoff(held), "the handler was cancelled", True)
        error = future.exception()
        if isinstance(error, HandlerExit) and error.__cause__ is not None:
            error = error.__cause__
        if isinstance(error, Reject):
            return Verdict(Action.DEAD, error=clip(f"rejected: {error.reason}"))
        if isinstance(error, Retry):
            delay_s = error.delay_s if error.delay_s is not None else self.backoff(held)
            return Verdict(Action.RETRY, delay_s, clip(f"retry requested: {error.message}"))
        if error is not None:
            return Verdict(Action.RETRY, self.backoff(held), describe(error), True, error)
        spec = self.registry.get(context.message.handler)
        if context.runtime.acked or (spec is not None and spec.auto_ack):
            return Verdict(Action.ACK)
        return Verdict(
            Action.RETRY,
            self.backoff(held),
            "the handler returned without acking (call context.runtime.ack_message() "
            "or register it with auto_ack=True)",
            failed=True,
        )
