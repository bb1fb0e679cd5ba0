"""Kafka-specific behaviour beyond the shared contract, against a real broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from conveyor.exceptions import BadRequest
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.kafka import KafkaBackend
from conveyor.queues.kafka.config import KafkaConfig
from conveyor.queues.model import Credentials
from tests.contract.queue_contract import eventually, nothing_within, receive
from tests.kafka.support import delete_topics, fresh_name, kafka_queue, require_kafka

pytestmark = pytest.mark.kafka
Open = Callable[..., Awaitable[KafkaBackend]]


@pytest.fixture
async def open_backend() -> AsyncIterator[Open]:
    """Opens backends on one fresh topic (several backends = several group members)."""
    require_kafka()
    name = fresh_name("kafka")
    opened: list[KafkaBackend] = []

    async def make(**options: Any) -> KafkaBackend:
        queue = kafka_queue(name, create_if_missing=True, **options)
        backend = KafkaBackend(queue, Credentials(None, None))
        await backend.open()
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        await backend.close()
    delete_topics(name)


def body(n: int) -> bytes:
    return orjson.dumps({"handler": "test", "n": n})


async def test_messages_with_one_ordering_key_share_a_partition(open_backend: Open) -> None:
    backend = await open_backend(partitions=3)
    sent = [OutgoingMessage(body=body(n), ordering_key="customer-7") for n in range(10)]
    results = await backend.publish_batch(sent)
    partitions = {r.backend_id.split(":")[0] for r in results}
    assert len(partitions) == 1
    offsets = [int(r.backend_id.split(":")[1]) for r in results]
    assert offsets == sorted(offsets)


async def test_dead_letters_page_delete_and_redrive_by_id(open_backend: Open) -> None:
    backend = await open_backend(max_attempts=1)
    sent = [OutgoingMessage(body=body(n)) for n in range(3)]
    await backend.publish_batch(sent)
    for delivery in await receive(backend, 3):
        assert await backend.dead_letter(delivery, reason=f"bad {delivery.id}")

    async def dead_is(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return (await backend.stats()).dead == count

        return check

    await eventually(await dead_is(3))
    first = await backend.dead_letters(limit=2)
    assert len(first.items) == 2 and first.next_cursor is not None
    rest = await backend.dead_letters(limit=2, cursor=first.next_cursor)
    assert len(rest.items) == 1 and rest.next_cursor is None
    letters = first.items + rest.items
    assert {d.message_id for d in letters} == {m.id for m in sent}
    assert all(d.last_error == f"bad {d.message_id}" for d in letters)
    assert all(d.attempts == 1 and d.dead_at_ms for d in letters)

    doomed, revived, kept = letters
    assert await backend.delete_dead_letters([doomed.id]) == 1
    assert await backend.delete_dead_letters([doomed.id]) == 0  # gone already
    assert await backend.redrive([revived.id]) == 1
    (back,) = await receive(backend, 1)
    assert back.id == revived.message_id and back.attempt == 1
    assert await backend.ack(back)
    await eventually(await dead_is(1))
    (left,) = (await backend.dead_letters(limit=10)).items
    assert left.message_id == kept.message_id
    with pytest.raises(BadRequest):
        await backend.redrive(["not-an-id"])


async def test_a_slow_handler_keeps_its_partition(
    open_backend: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer keeps polling while a handler runs far longer than the group allows
    between polls: the member is not dropped, and the handler's ack still counts."""
    consumer_settings = KafkaConfig.consumer

    def strict(self: KafkaConfig) -> dict[str, Any]:
        return {**consumer_settings(self), "max.poll.interval.ms": 7000}

    monkeypatch.setattr(KafkaConfig, "consumer", strict)
    worker = await open_backend(visibility_timeout_s=60)
    await worker.publish(OutgoingMessage(body=body(1)))
    (delivery,) = await receive(worker, 1, timeout_s=30)
    await asyncio.sleep(9)  # the "handler" runs longer than max.poll.interval.ms
    # Had the member been dropped, its partitions and leases would be gone (False).
    assert await worker.ack(delivery)
    await worker.close()

    # The ack was committed: the next member of the group has nothing to do.
    successor = await open_backend()
    await nothing_within(successor, 6)


async def test_a_rebalance_lets_running_handlers_finish(open_backend: Open) -> None:
    """A member joining takes partitions away; a handler that finishes within the grace
    period still settles its message, and the new owner does not get it again."""
    first = await open_backend(visibility_timeout_s=60)
    await first.publish(OutgoingMessage(body=body(1)))
    (delivery,) = await receive(first, 1, timeout_s=30)

    second = await open_backend(visibility_timeout_s=60)

    async def second_member() -> list[Any]:
        got: list[Any] = []
        for _ in range(12):
            got += await second.receive(10, wait_s=1)
        return got

    joining = asyncio.create_task(second_member())
    await asyncio.sleep(3)  # the group is rebalancing: the first member is giving back
    assert await first.ack(delivery)
    assert await joining == []
