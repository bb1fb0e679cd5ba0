"""The lease keeper and settling against a scripted backend (unit level)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.queues.base import Delivery
from conveyor.queues.model import Queue, QueueOptions, QueueType
from conveyor.worker.leases import Held, LeaseKeeper, margin_s
from conveyor.worker.outcome import Action, Counters, Verdict, settle


class ScriptedBackend:
    """Answers extend_lease/ack from a script; records the calls."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def _answer(self, call: str) -> bool:
        self.calls.append(call)
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    async def extend_lease(self, delivery: Delivery, *, seconds: float) -> bool:
        return await self._answer(f"extend {seconds:g}")

    async def ack(self, delivery: Delivery) -> bool:
        return await self._answer("ack")

    async def retry(self, delivery: Delivery, *, delay_s: float, error: str | None) -> bool:
        return await self._answer(f"retry {delay_s:g} {error}")


def queue(visibility_timeout_s: float = 3) -> Queue:
    now = datetime.now(UTC)
    options = QueueOptions(visibility_timeout_s=visibility_timeout_s)
    return Queue("q1", "q", QueueType.EMBEDDED, None, None, False, None, None, options, now, now)


def held(backend: ScriptedBackend, lease_until: float) -> Held:
    delivery = Delivery("m1", b"{}", {}, 1, 0, receipt=None, backend_id="1")
    return Held(delivery, backend, queue(), lease_until)  # type: ignore[arg-type]


async def settle_tasks() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_leases_are_extended_once_a_third_is_used() -> None:
    backend = ScriptedBackend(True)
    keeper, item = LeaseKeeper(tick_s=1), held(backend, lease_until=100.0)
    keeper.hold(item)
    keeper.check(now=97.5)  # 2.5 s of 3 left: not yet
    assert backend.calls == []
    keeper.check(now=98.5)  # 1.5 s left: extend
    await settle_tasks()
    assert backend.calls == ["extend 3"]
    assert item.lease_until > 100.0 and not item.lost
    await keeper.close()


async def test_a_lost_lease_cancels_the_running_handler() -> None:
    backend = ScriptedBackend(False)
    keeper, item = LeaseKeeper(tick_s=1), held(backend, lease_until=100.0)
    item.handler = asyncio.ensure_future(asyncio.sleep(30))
    keeper.hold(item)
    keeper.check(now=98.5)
    await settle_tasks()
    assert item.lost and item.handler.cancelled()
    await keeper.close()


async def test_a_lease_that_cannot_be_extended_is_given_up_before_its_deadline() -> None:
    backend = ScriptedBackend(ConnectionError("db down"), ConnectionError("db down"))
    keeper, item = LeaseKeeper(tick_s=1), held(backend, lease_until=100.0)
    item.handler = asyncio.ensure_future(asyncio.sleep(30))
    keeper.hold(item)
    keeper.check(now=98.5)
    await settle_tasks()
    assert not item.lost  # a failed extension is retried while time remains
    keeper.check(now=100.0 - margin_s(3) - 0.01)
    await settle_tasks()
    assert not item.lost
    keeper.check(now=100.0 - margin_s(3))
    await settle_tasks()
    assert item.lost and item.handler.cancelled()
    await keeper.close()


async def test_settling_retries_a_failing_backend_then_gives_up_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def instantly(_: float) -> None:
        return None

    monkeypatch.setattr("conveyor.worker.outcome.asyncio.sleep", instantly)
    flaky = ScriptedBackend(OSError("reset"), True)
    item = held(flaky, 0)
    assert await settle(flaky, item.delivery, Verdict(Action.ACK)) is True  # type: ignore[arg-type]
    assert flaky.calls == ["ack", "ack"]
    down = ScriptedBackend(*[OSError("down")] * 10)
    assert await settle(down, item.delivery, Verdict(Action.RETRY, 2, "e")) is None  # type: ignore[arg-type]
    assert down.calls == ["retry 2 e"] * 4
    assert await settle(down, item.delivery, Verdict(Action.LOST)) is False  # type: ignore[arg-type]


def test_counters_tell_outcomes_apart() -> None:
    counters = Counters()
    counters.count(Verdict(Action.ACK), True)
    counters.count(Verdict(Action.RETRY, failed=True), True)
    counters.count(Verdict(Action.DEAD), True)
    counters.count(Verdict(Action.ACK), False)  # lease lost meanwhile
    counters.count(Verdict(Action.RELEASE), True)
    counters.count(Verdict(Action.ACK), None)  # backend down: not counted as done
    assert (counters.acked, counters.retried, counters.dead_lettered) == (1, 1, 1)
    assert (counters.lease_lost, counters.released, counters.failed) == (1, 1, 1)
    assert counters.processed == 3
