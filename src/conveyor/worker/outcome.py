"""What became of a delivery: the verdict, how it is settled, and the counters.

A verdict is decided once per delivery (`dispatch.py`), bounded by the queue's
`max_attempts` here, then applied to the backend. Settling never raises: a backend
that fails to settle leaves the message leased, and the lease brings it back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum

from conveyor.queues.base import Delivery, QueueBackend
from conveyor.queues.headers import escape
from conveyor.worker.leases import Held
from conveyor.worker.logs import StructuredLog

log = logging.getLogger("conveyor.worker")

#: Longest last-error text kept with a message.
MAX_ERROR_CHARS = 4000
#: Pauses between tries when the backend fails to settle (while the lease lasts).
_SETTLE_PAUSES_S = (0.2, 0.5, 1.0)


class Action(StrEnum):
    #: Done: the message is removed.
    ACK = "acked"
    #: Visible again after a delay, as the next attempt.
    RETRY = "retried"
    #: Moved to the dead letters with a reason (or dropped if the queue keeps none).
    DEAD = "dead-lettered"
    #: Given back unstarted, not counted as an attempt.
    RELEASE = "released"
    #: The lease was lost: somebody else owns the message; nothing to settle.
    LOST = "lease-lost"
    #: Left to its lease: a thread still runs the handler, so no one may retry it yet.
    ABANDON = "abandoned"


@dataclass(frozen=True)
class Verdict:
    action: Action
    delay_s: float = 0.0
    #: Kept as the message's last error (retry) or dead-letter reason.
    error: str | None = None
    #: A failure of the handler (raised, timed out, rejected, poison), not a signal.
    failed: bool = False
    #: The exception a handler raised unexpectedly (its traceback goes to the log).
    cause: BaseException | None = field(default=None, compare=False, repr=False)

    def bounded(self, attempt: int, max_attempts: int) -> Verdict:
        """A retry past the queue's last attempt becomes a dead letter."""
        if self.action is Action.RETRY and attempt >= max_attempts:
            reason = f"gave up after {attempt} attempt(s); last error: {self.error}"
            return replace(self, action=Action.DEAD, error=clip(reason), delay_s=0.0)
        return self


def clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


async def settle(backend: QueueBackend, delivery: Delivery, verdict: Verdict) -> bool | None:
    """Apply the verdict: True if settled, False if the lease was lost, None if the
    backend kept failing (the message comes back when its lease expires)."""
    if verdict.action is Action.LOST:
        return False
    if verdict.action is Action.ABANDON:
        return None
    for pause_s in (*_SETTLE_PAUSES_S, None):
        try:
            return await _apply(backend, delivery, verdict)
        except Exception as exc:
            if pause_s is None:
                log.error(
                    "could not settle message=%s as %s: %s: %s",
                    escape(delivery.id),
                    verdict.action.value,
                    type(exc).__name__,
                    exc,
                )
                return None
            await asyncio.sleep(pause_s)
    return None  # pragma: no cover - the loop always returns


async def _apply(backend: QueueBackend, delivery: Delivery, verdict: Verdict) -> bool:
    match verdict.action:
        case Action.ACK:
            return await backend.ack(delivery)
        case Action.RETRY:
            return await backend.retry(delivery, delay_s=verdict.delay_s, error=verdict.error)
        case Action.DEAD:
            return await backend.dead_letter(delivery, reason=verdict.error or "dead-lettered")
        case Action.RELEASE:
            return await backend.release(delivery)
    return False


@dataclass
class Counters:
    """Outcomes since the worker started (for heartbeats and, later, metrics)."""

    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    released: int = 0
    lease_lost: int = 0
    #: Handler failures: exceptions, timeouts, rejects, poison messages.
    failed: int = 0
    in_flight: int = 0
    started_at: float = field(default_factory=time.time)

    @property
    def processed(self) -> int:
        """Deliveries this worker settled for good or for a retry."""
        return self.acked + self.retried + self.dead_lettered

    def summary(self) -> dict[str, object]:
        return {
            "acked": self.acked,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "released": self.released,
            "lease_lost": self.lease_lost,
            "failed": self.failed,
        }

    def count(self, verdict: Verdict, settled: bool | None) -> None:
        if verdict.failed:
            self.failed += 1
        if settled is False or verdict.action is Action.LOST:
            self.lease_lost += 1
            return
        if settled is None:
            return
        match verdict.action:
            case Action.ACK:
                self.acked += 1
            case Action.RETRY:
                self.retried += 1
            case Action.DEAD:
                self.dead_lettered += 1
            case Action.RELEASE:
                self.released += 1


def log_outcome(
    log: StructuredLog,
    held: Held,
    handler: str | None,
    verdict: Verdict,
    settled: bool | None,
    duration_s: float,
) -> None:
    """The one line per message: handler, id, attempt, duration and result."""
    result = verdict.action.value if settled is not False else Action.LOST.value
    if (
        settled
        and verdict.action is Action.ACK
        and not getattr(held.backend, "acks_confirmed", True)
    ):
        # The broker does not answer an ack (AMQP): it was sent; a connection lost
        # before it arrived makes the broker deliver the message again.
        result = "ack-sent"
    if settled is None and verdict.action not in (Action.ABANDON, Action.LOST):
        result += "-unsettled"
    fields: dict[str, object] = {
        "handler": handler or "-",
        "message_id": held.delivery.id,
        "queue": held.queue.name,
        "attempt": held.delivery.attempt,
        "duration_ms": round(duration_s * 1000, 1),
        "result": result,
    }
    if verdict.action is Action.RETRY:
        fields["delay_s"] = round(verdict.delay_s, 3)
    if verdict.error:
        fields["error"] = verdict.error
    log.log(_level(verdict, settled), "message handled", exc_info=verdict.cause, **fields)


def _level(verdict: Verdict, settled: bool | None) -> int:
    if settled is False or verdict.action in (Action.LOST, Action.ABANDON):
        return logging.WARNING
    if verdict.action is Action.DEAD and verdict.failed:
        return logging.ERROR
    if verdict.failed or settled is None:
        return logging.WARNING
    return logging.INFO
