"""The behaviour every queue backend must have, written once.

A test class per backend inherits `QueueContract` and provides one fixture,
`new_backend(**options)`: an opened backend on a fresh, empty queue. Timings use a
one-second visibility timeout: the smallest every broker supports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from conveyor.queues.base import (
    HEADER_ATTEMPT,
    HEADER_MESSAGE_ID,
    Delivery,
    OutgoingMessage,
    QueueBackend,
)

NewBackend = Callable[..., Awaitable[QueueBackend]]


def message(n: int = 0, **fields: Any) -> OutgoingMessage:
    return OutgoingMessage(body=orjson.dumps({"handler": "test", "n": n, **fields}))


async def receive(backend: QueueBackend, count: int, *, timeout_s: float = 15) -> list[Delivery]:
    """Exactly `count` deliveries, or fail after `timeout_s`."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"received {len(got)} of {count} messages within {timeout_s} s")
        got += await backend.receive(count - len(got), wait_s=min(remaining, 1))
    return got


async def nothing_within(backend: QueueBackend, seconds: float) -> None:
    got = await backend.receive(10, wait_s=seconds)
    assert got == [], f"expected no message, got {[d.body for d in got]}"


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.2)


class QueueContract:
    async def test_publish_receive_ack(self, new_backend: NewBackend) -> None:
        backend = await new_backend()
        sent = message(1, text="héllo ☃")
        result = await backend.publish(sent)
        assert result.message_id == sent.id and result.backend_id
        (delivery,) = await receive(backend, 1)
        assert orjson.loads(delivery.body) == orjson.loads(sent.body)
        assert delivery.id == sent.id
        assert delivery.attempt == 1
        assert delivery.headers[HEADER_MESSAGE_ID] == sent.id
        assert delivery.headers[HEADER_ATTEMPT] == "1"
        assert abs(delivery.published_at_ms - sent.published_at_ms) < 1000
        assert await backend.ack(delivery)
        await nothing_within(backend, 1.5)

    async def test_a_leased_message_is_hidden_until_the_lease_expires(
        self, new_backend: NewBackend
    ) -> None:
        backend = await new_backend(visibility_timeout_s=1)
        sent = message()
        await backend.publish(sent)
        (first,) = await receive(backend, 1)
        await nothing_within(backend, 0.3)
        (again,) = await receive(backend, 1, timeout_s=10)
        assert again.id == first.id == sent.id
        assert again.attempt == 2
        assert await backend.ack(again)

    async def test_retry_honours_its_delay_and_keeps_the_id(self, new_backend: NewBackend) -> None:
        backend = await new_backend(visibility_timeout_s=30)
        sent = message()
        await backend.publish(sent)
        (first,) = await receive(backend, 1)
        retried_at = time.monotonic()
        assert await backend.retry(first, delay_s=2, error="boom")
        await nothing_within(backend, 1.2)
        (again,) = await receive(backend, 1)
        assert time.monotonic() - retried_at >= 1.9
        assert again.id == sent.id
        assert again.attempt == 2
        assert await backend.ack(again)

    async def test_dead_letters_keep_the_error_and_can_be_redriven(
        self, new_backend: NewBackend
    ) -> None:
        backend = await new_backend(max_attempts=2)
        sent = message(7)
        await backend.publish(sent)
        (first,) = await receive(backend, 1)
        assert await backend.retry(first, delay_s=0, error="first failure")
        (second,) = await receive(backend, 1)
        assert second.attempt == 2
        assert await backend.dead_letter(second, reason="gave up after 2 attempts")
        await nothing_within(backend, 1)

        async def one_dead() -> bool:
            return (await backend.stats()).dead == 1

        await eventually(one_dead)
        page = await backend.dead_letters(limit=10)
        (letter,) = page.items
        assert letter.message_id == sent.id
        assert orjson.loads(letter.body) == orjson.loads(sent.body)
        assert letter.last_error == "gave up after 2 attempts"
        assert await backend.redrive() == 1
        (back,) = await receive(backend, 1)
        assert back.id == sent.id
        assert await backend.ack(back)

        async def none_dead() -> bool:
            return (await backend.stats()).dead == 0

        await eventually(none_dead)

    async def test_stats_count_ready_and_in_flight(self, new_backend: NewBackend) -> None:
        backend = await new_backend(visibility_timeout_s=30)
        for n in range(3):
            await backend.publish(message(n))

        async def three_ready() -> bool:
            stats = await backend.stats()
            return stats.ready == 3 and stats.in_flight in (0, None)

        await eventually(three_ready)
        deliveries = await receive(backend, 2)

        async def two_in_flight() -> bool:
            stats = await backend.stats()
            return stats.ready == 1 and stats.in_flight in (2, None)

        await eventually(two_in_flight)
        for delivery in deliveries:
            assert await backend.ack(delivery)

    async def test_batch_publish_delivers_every_message(self, new_backend: NewBackend) -> None:
        backend = await new_backend()
        batch = [message(n) for n in range(25)]
        results = await backend.publish_batch(batch)
        assert [r.message_id for r in results] == [m.id for m in batch]
        assert len({r.backend_id for r in results}) == 25
        deliveries = await receive(backend, 25)
        assert sorted(d.id for d in deliveries) == sorted(m.id for m in batch)
        for delivery in deliveries:
            assert await backend.ack(delivery)
        await nothing_within(backend, 1)

    async def test_extending_the_lease_keeps_the_message_hidden(
        self, new_backend: NewBackend
    ) -> None:
        backend = await new_backend(visibility_timeout_s=1)
        await backend.publish(message())
        (delivery,) = await receive(backend, 1)
        assert await backend.extend_lease(delivery, seconds=4)
        await nothing_within(backend, 2)
        assert await backend.ack(delivery)

    async def test_a_released_message_comes_back_at_once(self, new_backend: NewBackend) -> None:
        backend = await new_backend(visibility_timeout_s=30)
        sent = message()
        await backend.publish(sent)
        (delivery,) = await receive(backend, 1)
        assert await backend.release(delivery)
        (again,) = await receive(backend, 1, timeout_s=5)
        assert again.id == sent.id
        assert await backend.ack(again)

    async def test_check_says_ok(self, new_backend: NewBackend) -> None:
        result = await (await new_backend()).check()
        assert result.ok, result.error
        assert result.error is None

    async def test_close_is_idempotent(self, new_backend: NewBackend) -> None:
        backend = await new_backend()
        await backend.close()
        await backend.close()
