"""What the SQS backend does beyond the shared contract, against the real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from conveyor.exceptions import PayloadTooLarge
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.sqs import SQSBackend
from conveyor.queues.sqs.backend import LEASE_EXPIRED_ERROR
from conveyor.queues.sqs.errors import QueueMissing
from tests.contract.queue_contract import eventually, nothing_within, receive
from tests.sqs_support import (
    ACCOUNT,
    CREDENTIALS,
    drop_queues,
    raw_client,
    receive_all,
    require_sqs,
    sqs_queue,
    unique_name,
)

pytestmark = pytest.mark.sqs
Open = Callable[..., Awaitable[SQSBackend]]


@pytest.fixture
async def sqs() -> AsyncIterator[Any]:
    require_sqs()
    async with raw_client() as client:
        yield client


@pytest.fixture
async def open_backend(sqs: Any) -> AsyncIterator[Open]:
    """`await open_backend(name, **options)`: an opened backend; queues dropped after."""
    backends: list[SQSBackend] = []

    async def make(name: str, **options: Any) -> SQSBackend:
        backend = SQSBackend(sqs_queue(name, **options), CREDENTIALS)
        backends.append(backend)
        await backend.open()
        return backend

    yield make
    for backend in backends:
        await backend.close()
    await drop_queues(sqs, *(b.queue.url.rsplit("/", 1)[1] for b in backends if b.queue.url))


def message(n: int, **fields: Any) -> OutgoingMessage:
    return OutgoingMessage(body=orjson.dumps({"n": n}), **fields)


async def test_fifo_queue_groups_keep_order_and_publishes_deduplicate(
    sqs: Any, open_backend: Open
) -> None:
    name = unique_name("fifo", fifo=True)
    backend = await open_backend(name, create_if_missing=True)
    keyed = [message(n, ordering_key="customer-7") for n in range(5)]
    plain = message(99)
    for sent in [*keyed, plain]:
        await backend.publish(sent)
    await backend.publish(keyed[0])  # the same message id again: SQS drops the duplicate
    url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
    raw = await receive_all(sqs, url, 6)
    await nothing_within(backend, 1)
    groups = {m["MessageAttributes"]["conveyor-message-id"]["StringValue"]: m for m in raw}
    assert len(raw) == 6 and set(groups) == {m.id for m in [*keyed, plain]}
    for sent in keyed:
        assert groups[sent.id]["Attributes"]["MessageGroupId"] == "customer-7"
        assert groups[sent.id]["Attributes"]["MessageDeduplicationId"] == sent.id
    assert groups[plain.id]["Attributes"]["MessageGroupId"] == "default"
    in_group = [m for m in raw if m["Attributes"]["MessageGroupId"] == "customer-7"]
    assert [json.loads(m["Body"])["n"] for m in in_group] == [0, 1, 2, 3, 4]


async def test_fifo_deliveries_come_in_order_and_dead_letters_redrive(open_backend: Open) -> None:
    backend = await open_backend(unique_name("fifo-dlq", fifo=True), create_if_missing=True)
    sent = [message(n, ordering_key="k") for n in range(3)]
    await backend.publish_batch(sent)
    first = await receive(backend, 3)
    assert [d.id for d in first] == [m.id for m in sent]
    assert all(d.ordering_key == "k" for d in first)
    assert await backend.dead_letter(first[0], reason="no good")
    for delivery in first[1:]:
        assert await backend.ack(delivery)
    (letter,) = (await backend.dead_letters(limit=10)).items
    assert letter.message_id == sent[0].id and letter.last_error == "no good"
    # Within SQS's 5-minute deduplication window: the redriven copy must not be dropped.
    assert await backend.redrive() == 1
    (back,) = await receive(backend, 1)
    assert back.id == sent[0].id and back.ordering_key == "k"
    assert await backend.ack(back)


async def test_bodies_sqs_cannot_carry_travel_encoded_and_come_back_intact(
    sqs: Any, open_backend: Open
) -> None:
    name = unique_name("bodies")
    backend = await open_backend(name, create_if_missing=True)
    bodies = [b'{"raw": "\x00"}', '{"bom": "\ufffe"}'.encode(), b"\xff\xfe not UTF-8", b"{}"]
    results = await backend.publish_batch([OutgoingMessage(body=b) for b in bodies])
    deliveries = await receive(backend, 4)
    by_id = {d.backend_id: d.body for d in deliveries}
    assert [by_id[r.backend_id] for r in results] == bodies
    for delivery in deliveries:
        assert await backend.ack(delivery)
    await backend.publish(OutgoingMessage(body=bodies[0]))
    url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
    (raw,) = await receive_all(sqs, url, 1)
    assert raw["MessageAttributes"]["conveyor-encoding"]["StringValue"] == "base64"
    assert "\x00" not in raw["Body"]


async def test_headers_travel_as_message_attributes(sqs: Any, open_backend: Open) -> None:
    name = unique_name("headers")
    backend = await open_backend(name, create_if_missing=True)
    few = {"trace-id": "abc-123", "tenant": "acme"}
    many = {f"h{n}": str(n) for n in range(12)} | {"bad name!": "x"}
    await backend.publish(message(1, headers=few))
    (delivery,) = await receive(backend, 1)
    assert {k: delivery.headers[k] for k in few} == few
    assert await backend.ack(delivery)
    await backend.publish(message(2, headers=many))
    (delivery,) = await receive(backend, 1)
    assert {k: delivery.headers[k] for k in many} == many
    assert await backend.release(delivery)
    url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
    (raw,) = await receive_all(sqs, url, 1)
    assert len(raw["MessageAttributes"]) <= 10  # SQS's limit: packed into one attribute


async def test_a_queue_that_does_not_exist_is_not_opened(open_backend: Open) -> None:
    name = unique_name("absent")
    with pytest.raises(QueueMissing) as caught:
        await open_backend(name)
    assert f"SQS queue {name!r} does not exist" in caught.value.message
    assert "create_if_missing" in caught.value.message


async def test_messages_whose_leases_keep_expiring_are_buried(open_backend: Open) -> None:
    backend = await open_backend(
        unique_name("crash"), create_if_missing=True, max_attempts=1, visibility_timeout_s=1
    )
    sent = message(1)
    await backend.publish(sent)
    (first,) = await receive(backend, 1)  # then the "worker" dies: no ack, no retry
    assert first.attempt == 1
    await nothing_within(backend, 3)

    async def one_dead() -> bool:
        return (await backend.stats()).dead == 1

    await eventually(one_dead)
    (letter,) = (await backend.dead_letters(limit=5)).items
    assert letter.message_id == sent.id and letter.last_error == LEASE_EXPIRED_ERROR


async def test_dead_letters_page_delete_and_redrive_by_id(open_backend: Open) -> None:
    backend = await open_backend(unique_name("pages"), create_if_missing=True)
    await backend.publish_batch([message(n) for n in range(3)])
    for delivery in await receive(backend, 3):
        assert await backend.dead_letter(delivery, reason=f"bad {delivery.body!r}")
    first = await backend.dead_letters(limit=2)
    assert len(first.items) == 2 and first.next_cursor is not None
    second = await backend.dead_letters(limit=2, cursor=first.next_cursor)
    assert len(second.items) == 1 and second.next_cursor is None
    letters = first.items + second.items
    assert len({d.message_id for d in letters}) == 3
    assert await backend.delete_dead_letters([letters[0].id]) == 1
    assert await backend.redrive([letters[1].id]) == 1
    (back,) = await receive(backend, 1)
    assert back.id == letters[1].message_id and back.attempt == 1
    assert await backend.ack(back)

    async def one_left() -> bool:
        return (await backend.stats()).dead == 1

    await eventually(one_left)
    (last,) = (await backend.dead_letters(limit=10)).items
    assert last.id == letters[2].id


async def test_a_redrive_policy_names_the_dead_letter_queue(sqs: Any, open_backend: Open) -> None:
    graveyard, name = unique_name("graveyard"), unique_name("redriven")
    dlq_url = (await sqs.create_queue(QueueName=graveyard))["QueueUrl"]
    arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{graveyard}"
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 10})
    await sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})
    try:
        backend = await open_backend(name)
        await backend.publish(message(1))
        (delivery,) = await receive(backend, 1)
        assert await backend.dead_letter(delivery, reason="boom")
        (raw,) = await receive_all(sqs, dlq_url, 1)
        assert raw["MessageAttributes"]["conveyor-error"]["StringValue"] == "boom"
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            await sqs.get_queue_url(QueueName=f"{name}-dlq")
    finally:
        await sqs.delete_queue(QueueUrl=dlq_url)


async def test_a_message_over_the_queue_size_limit_is_refused_before_sending(
    sqs: Any, open_backend: Open
) -> None:
    name = unique_name("small")
    await sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": "1024"})
    backend = await open_backend(name)
    big = OutgoingMessage(body=orjson.dumps({"blob": "x" * 1000}))
    with pytest.raises(PayloadTooLarge, match="accepts 1024"):
        await backend.publish(big)
    with pytest.raises(PayloadTooLarge):
        await backend.publish_batch([message(1), big])
    assert (await backend.stats()).ready == 0
    # Batches are cut to fit the limit: 30 messages of ~300 bytes need several calls.
    medium = [OutgoingMessage(body=orjson.dumps({"n": n, "pad": "y" * 200})) for n in range(30)]
    results = await backend.publish_batch(medium)
    assert [r.message_id for r in results] == [m.id for m in medium]


async def test_concurrent_single_publishes_all_arrive(open_backend: Open) -> None:
    backend = await open_backend(unique_name("concurrent"), create_if_missing=True)
    sent = [message(n) for n in range(60)]
    results = await asyncio.gather(*(backend.publish(m) for m in sent))
    assert [r.message_id for r in results] == [m.id for m in sent]
    assert len({r.backend_id for r in results}) == 60
    deliveries = await receive(backend, 60)
    assert sorted(d.id for d in deliveries) == sorted(m.id for m in sent)
    acks = await asyncio.gather(*(backend.ack(d) for d in deliveries))
    assert all(acks)
    await nothing_within(backend, 1)
