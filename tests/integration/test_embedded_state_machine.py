"""A model-based test of the embedded queue: random publish/claim/settle/expire steps,
checked against a plain-Python model of what the queue must hold."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conveyor.config import Settings
from conveyor.platform import Platform
from conveyor.queues.base import Delivery, OutgoingMessage
from conveyor.queues.embedded import EmbeddedBackend, EmbeddedStore

T = TypeVar("T")
VISIBILITY_MS = 1_000
MAX_ATTEMPTS = 2


@dataclass
class Model:
    seq: int
    visible_at: int
    attempt: int = 0
    lease: str | None = None
    dead: bool = False


class Env:
    loop: asyncio.AbstractEventLoop
    platform: Platform
    now: list[int]
    names: itertools.count[int]


class EmbeddedQueueMachine(RuleBasedStateMachine):
    env: ClassVar[Env]

    def __init__(self) -> None:
        super().__init__()
        self.env.now[0] += 10**7  # a fresh time window per example
        options = {"visibility_timeout_s": VISIBILITY_MS / 1000, "max_attempts": MAX_ATTEMPTS}
        name = f"sm-{next(self.env.names)}"
        queue = self.run(
            self.env.platform.queues.create({"name": name, "type": "embedded", "options": options})
        )
        self.store = EmbeddedStore(self.env.platform.db, clock=lambda: self.env.now[0])
        self.backend = EmbeddedBackend(queue, self.store)
        self.model: dict[str, Model] = {}
        self.held: list[Delivery] = []
        self.seq = itertools.count()

    def teardown(self) -> None:
        self.run(self.store.close())

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.env.loop.run_until_complete(work)

    @property
    def now(self) -> int:
        return self.env.now[0]

    @rule(count=st.integers(1, 3))
    def publish(self, count: int) -> None:
        for _ in range(count):
            result = self.run(self.backend.publish(OutgoingMessage(body=b"{}")))
            self.model[result.message_id] = Model(next(self.seq), self.now)

    @rule(limit=st.integers(1, 4))
    def claim(self, limit: int) -> None:
        def visible() -> list[str]:
            ready = [
                (m.visible_at, m.seq, i)
                for i, m in self.model.items()
                if not m.dead and m.visible_at <= self.now
            ]
            return [i for _, _, i in sorted(ready)[:limit]]

        # Crash loops among the candidates are buried first, then the claim looks again.
        for i in visible():
            m = self.model[i]
            if m.lease and m.attempt >= MAX_ATTEMPTS:
                m.dead, m.lease = True, None
        expected = set(visible())
        got = self.run(self.backend.receive(limit))
        assert {d.id for d in got} == expected
        for delivery in got:
            m = self.model[delivery.id]
            m.attempt += 1
            assert delivery.attempt == m.attempt
            m.lease, m.visible_at = delivery.receipt[1], self.now + VISIBILITY_MS
            self.held.append(delivery)

    def _owns(self, delivery: Delivery) -> bool:
        m = self.model.get(delivery.id)
        return m is not None and not m.dead and m.lease == delivery.receipt[1]

    @precondition(lambda self: self.held)
    @rule(data=st.data(), action=st.sampled_from(["ack", "retry", "dead", "release", "extend"]))
    def settle(self, data: st.DataObject, action: str) -> None:
        delivery = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        owns = self._owns(delivery)
        m = self.model.get(delivery.id)
        if action == "ack":
            assert self.run(self.backend.ack(delivery)) is owns
            if owns:
                del self.model[delivery.id]
        elif action == "retry":
            delay_ms = data.draw(st.sampled_from([0, 500, 5_000, 20_000]))
            assert (
                self.run(self.backend.retry(delivery, delay_s=delay_ms / 1000, error="e")) is owns
            )
            if owns and m:
                m.lease, m.visible_at = None, self.now + delay_ms
        elif action == "dead":
            assert self.run(self.backend.dead_letter(delivery, reason="r")) is owns
            if owns and m:
                m.lease, m.dead = None, True
        elif action == "release":
            assert self.run(self.backend.release(delivery)) is owns
            if owns and m:
                m.lease, m.visible_at, m.attempt = None, self.now, m.attempt - 1
        else:
            assert self.run(self.backend.extend_lease(delivery, seconds=15)) is owns
            if owns and m:
                m.visible_at = self.now + 15_000
                self.held.append(delivery)

    @rule(ms=st.sampled_from([0, 100, 1_000, 5_000, 15_000]))
    def advance_clock(self, ms: int) -> None:
        self.env.now[0] += ms

    @rule()
    def worker_crashes(self) -> None:
        self.held.clear()  # its leases now only expire

    @rule()
    def redrive(self) -> None:
        moved = self.run(self.backend.redrive())
        dead = [m for m in self.model.values() if m.dead]
        assert moved == len(dead)
        for m in dead:
            m.dead, m.attempt, m.visible_at, m.lease = False, 0, self.now, None

    @invariant()
    def stats_match_the_model(self) -> None:
        stats = self.run(self.backend.stats())
        live = [m for m in self.model.values() if not m.dead]
        assert stats.ready == sum(m.visible_at <= self.now for m in live)
        assert stats.in_flight == sum(m.visible_at > self.now and m.lease is not None for m in live)
        assert stats.delayed == sum(m.visible_at > self.now and m.lease is None for m in live)
        assert stats.dead == len(self.model) - len(live)


def test_the_embedded_queue_behaves_like_its_model(settings: Settings) -> None:
    env = Env()
    env.loop = asyncio.new_event_loop()
    env.platform = Platform(settings)
    env.now = [1_000_000_000_000]
    env.names = itertools.count()
    try:
        env.loop.run_until_complete(env.platform.migrate())
        EmbeddedQueueMachine.env = env
        run_state_machine_as_test(
            EmbeddedQueueMachine,
            settings=settings_for_machine,
        )
    finally:
        env.loop.run_until_complete(env.platform.db.close())
        env.loop.close()


settings_for_machine = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
