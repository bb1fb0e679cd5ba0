"""RabbitMQ behaviour beyond the shared contract, against the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import orjson
import pytest

from conveyor.exceptions import ConnectionFailed, PublishFailed
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.rabbitmq import RabbitMQBackend, Timeouts, wire
from conveyor.queues.rabbitmq.batch import publish_confirmed
from tests import rabbitmq
from tests.contract.queue_contract import eventually, message, receive
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq

Make = Callable[..., Awaitable[RabbitMQBackend]]
QUICK = Timeouts(connect_s=2, operation_s=1.5, reconnect_interval_s=0.5, heartbeat_s=2)


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Opened backends on fresh queues; closed and deleted afterwards."""
    rabbitmq.require()
    backends: list[RabbitMQBackend] = []
    names: set[str] = set()

    async def build(
        name: str | None = None,
        *,
        url: str = rabbitmq.RABBITMQ_URL,
        timeouts: Timeouts | None = None,
        **options: Any,
    ) -> RabbitMQBackend:
        queue, credentials = rabbitmq.queue_for(name or rabbitmq.unique_name("it"), url, **options)
        names.add(queue.name)
        backend = RabbitMQBackend(queue, credentials, timeouts=timeouts)
        backends.append(backend)
        await backend.open()
        return backend

    yield build
    for backend in backends:
        await backend.close()
    for name in names:
        await rabbitmq.delete_queues(name)


async def raw_channel() -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(rabbitmq.RABBITMQ_URL, timeout=10)
    return connection, await connection.channel()


async def test_publishing_to_a_deleted_queue_is_an_error_not_a_success(make: Make) -> None:
    backend = await make()
    connection, channel = await raw_channel()
    async with connection:
        await channel.queue_delete(backend.queue.name)
    with pytest.raises(PublishFailed, match="could not route"):
        await backend.publish(message())


async def underlying_channel(backend: RabbitMQBackend) -> aiormq.Channel:
    channel = await backend._channel()
    assert isinstance(channel, aiormq.Channel)
    return channel


async def test_a_batch_arrives_whole_in_order_persistent_and_leaves_no_bookkeeping(
    make: Make,
) -> None:
    backend = await make()
    sent = [message(n) for n in range(300)]  # more than one write buffer's worth
    sent.append(OutgoingMessage(body=b"x" * 300_000))  # split over several body frames
    results = await backend.publish_batch(sent)
    assert [r.message_id for r in results] == [m.id for m in sent]
    channel = await underlying_channel(backend)
    assert not channel.confirmations and not channel.message_id_delivery_tag

    connection, raw = await raw_channel()
    async with connection:
        queue = await raw.get_queue(backend.queue.name)
        got = []
        while (incoming := await queue.get(fail=False, timeout=5)) is not None:
            got.append(incoming)
            await incoming.ack()
    assert [m.body for m in got] == [m.body for m in sent]
    assert [m.message_id for m in got] == [m.id for m in sent]
    assert {m.delivery_mode for m in got} == {aio_pika.DeliveryMode.PERSISTENT}
    assert all(m.headers["conveyor-message-id"] == m.message_id for m in got)


async def test_a_batch_no_queue_takes_fails_and_the_channel_goes_on(make: Make) -> None:
    backend = await make()
    connection, raw = await raw_channel()
    async with connection:
        await raw.queue_delete(backend.queue.name)
    with pytest.raises(PublishFailed, match="could not route"):
        await backend.publish_batch([message(n) for n in range(5)])
    channel = await underlying_channel(backend)
    assert not channel.message_id_delivery_tag

    async def acks_after_the_returns_handled() -> bool:  # each return is followed by an ack
        return not channel.confirmations

    await eventually(acks_after_the_returns_handled, timeout_s=5)
    # The same channel publishes on, once the queue is back.
    connection, raw = await raw_channel()
    async with connection:
        await raw.declare_queue(backend.queue.name, durable=True)
    assert len(await backend.publish_batch([message(n) for n in range(3)])) == 3
    assert await underlying_channel(backend) is channel
    assert (await backend.stats()).ready == 3


async def test_a_batch_to_a_silent_broker_fails_within_the_timeout(make: Make) -> None:
    async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:
        backend = await make(url=f"amqp://127.0.0.1:{proxy.port}/", timeouts=QUICK)
        await backend.publish_batch([message(0)])
        proxy.stall()
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match="did not answer"):
            await backend.publish_batch([message(n) for n in range(20)])
        assert time.monotonic() - started < 10


async def test_a_batch_on_a_channel_closed_under_it_fails_at_once(make: Make) -> None:
    # The broker silent first: else it may confirm the whole batch before the close.
    # No operation timeout to end it: only the close can, or the deadline below fails.
    patient = replace(QUICK, operation_s=600)
    async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:
        backend = await make(url=f"amqp://127.0.0.1:{proxy.port}/", timeouts=patient)
        channel = await underlying_channel(backend)
        proxy.stall()
        publishing = asyncio.create_task(backend.publish_batch([message(n) for n in range(50)]))
        while not channel.confirmations:
            await asyncio.sleep(0)  # until the batch is written and waits for its confirms
        proxy.cut()  # the connection, and the channel with it, closes under the batch
        with pytest.raises(ConnectionFailed):
            await asyncio.wait_for(publishing, 30)


async def test_a_batch_that_never_went_out_gives_its_delivery_tags_back(make: Make) -> None:
    """A batch that fails before its write (a header no AMQP table can hold) or is
    cancelled while it waits for the channel leaves the channel as it found it: the
    next publishes are confirmed, each by its own delivery tag."""
    backend = await make()
    await backend.publish_batch([message(0)])
    channel = await underlying_channel(backend)
    tag = channel.delivery_tag
    unencodable = wire.Properties(message_id="bad", headers={"x": object()})
    good = [(m.body, wire.outgoing(m)) for m in (message(1), message(2))]
    with pytest.raises(TypeError):
        await publish_confirmed(channel, backend.queue.name, [*good, (b"{}", unencodable)])
    assert channel.delivery_tag == tag
    assert not channel.confirmations and not channel.message_id_delivery_tag

    async with channel.lock:  # another publish holds the channel
        waiting = asyncio.create_task(backend.publish_batch([message(3)]))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    assert channel.delivery_tag == tag

    await backend.publish_batch([message(4), message(5)])
    await backend.publish(message(6))
    assert channel.delivery_tag == tag + 3
    assert (await backend.stats()).ready == 4


async def test_a_batch_needs_a_channel_that_raises_on_returns(make: Make) -> None:
    backend = await make()
    connection, _ = await raw_channel()
    async with connection:
        lenient = await connection.channel(publisher_confirms=True, on_return_raises=False)
        underlay = await lenient.get_underlay_channel()
        m = message()
        with pytest.raises(aiormq.exceptions.ChannelInvalidStateError, match="raise on returns"):
            await publish_confirmed(underlay, backend.queue.name, [(m.body, wire.outgoing(m))])


async def test_a_silent_broker_fails_publishes_within_the_timeout(make: Make) -> None:
    async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:
        url = f"amqp://127.0.0.1:{proxy.port}/"
        backend = await make(url=url, timeouts=QUICK)
        await backend.publish(message())
        proxy.stall()
        started = time.monotonic()
        with pytest.raises(ConnectionFailed):
            await backend.publish(message())
        assert time.monotonic() - started < 10
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match="did not answer"):
            await make(url=url, timeouts=QUICK)
        assert time.monotonic() - started < 10


async def test_check_never_raises_and_hides_the_password(make: Make) -> None:
    queue, _ = rabbitmq.queue_for(rabbitmq.unique_name("it"), "amqp://guest@127.0.0.1:1/")
    backend = RabbitMQBackend(queue, rabbitmq.Credentials("guest", "s3cret-word"))
    result = await backend.check()
    assert not result.ok and result.error is not None
    assert "127.0.0.1:1" in result.error and "s3cret-word" not in result.error
    await backend.close()


async def test_check_reports_a_missing_helper_queue(make: Make) -> None:
    backend = await make()
    connection, channel = await raw_channel()
    async with connection:
        await channel.queue_delete(backend.topology.dead_letters)
    result = await backend.check()
    assert not result.ok and result.error is not None
    assert backend.topology.dead_letters in result.error


async def test_declaring_accepts_a_queue_that_exists_with_other_settings(make: Make) -> None:
    name = rabbitmq.unique_name("quorum")
    connection, channel = await raw_channel()
    async with connection:
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    backend = await make(name)
    await backend.publish(message(1))
    (delivery,) = await receive(backend, 1)
    assert await backend.ack(delivery)


async def test_the_last_lease_to_run_out_dead_letters_the_message(make: Make) -> None:
    backend = await make(visibility_timeout_s=0.5, max_attempts=2)
    sent = message()
    await backend.publish(sent)
    (first,) = await receive(backend, 1)
    (second,) = await receive(backend, 1)
    assert second.attempt == 2 and second.id == sent.id
    assert not await backend.ack(first)  # its lease ran out

    async def buried() -> bool:
        return (await backend.stats()).dead == 1

    await eventually(buried)
    (letter,) = (await backend.dead_letters(limit=10)).items
    assert letter.message_id == sent.id and letter.attempts == 2
    assert letter.last_error and "without being settled" in letter.last_error


async def test_a_delivery_lost_with_its_consumer_counts_as_an_attempt(make: Make) -> None:
    name = rabbitmq.unique_name("lost")
    crashed = await make(name, visibility_timeout_s=60)
    sent = message()
    await crashed.publish(sent)
    (first,) = await receive(crashed, 1)
    await crashed.close()  # unsettled: RabbitMQ takes it back, flagged redelivered
    survivor = await make(name, visibility_timeout_s=60)
    (again,) = await receive(survivor, 1)
    assert again.id == sent.id and again.attempt == first.attempt + 1 == 2
    assert await survivor.ack(again)


async def test_closing_gives_back_prefetched_messages_without_counting_them(make: Make) -> None:
    name = rabbitmq.unique_name("prefetch")
    first = await make(name)
    await first.publish(message(0))
    (delivery,) = await receive(first, 1)
    assert await first.ack(delivery)
    await first.receive(5)  # the prefetch follows the largest request
    for n in range(3):
        await first.publish(message(n + 1))

    async def all_prefetched() -> bool:
        return (await first.stats()).ready == 0

    await eventually(all_prefetched)
    await first.close()
    second = await make(name)
    deliveries = await receive(second, 3)
    assert sorted(orjson.loads(d.body)["n"] for d in deliveries) == [1, 2, 3]
    assert [d.attempt for d in deliveries] == [1, 1, 1]


async def test_the_prefetch_bounds_what_a_receiver_holds(make: Make) -> None:
    backend = await make()
    await backend.publish_batch([message(n) for n in range(10)])
    deliveries = await receive(backend, 2)

    async def eight_left() -> bool:
        return (await backend.stats()).ready == 8

    await eventually(eight_left)
    await asyncio.sleep(0.3)
    assert (await backend.stats()).ready == 8
    for delivery in deliveries:
        assert await backend.ack(delivery)


async def test_messages_from_other_producers_get_a_stable_id(make: Make) -> None:
    backend = await make()
    connection, channel = await raw_channel()
    async with connection:
        for message_id in ("external-1", None):
            body = orjson.dumps({"from": message_id})
            raw = aio_pika.Message(body, message_id=message_id)
            await channel.default_exchange.publish(raw, routing_key=backend.queue.name)
    deliveries = await receive(backend, 2)
    assert deliveries[0].id == "external-1" and deliveries[0].attempt == 1
    for delivery in deliveries:
        assert await backend.retry(delivery, delay_s=0, error="again")
    again = await receive(backend, 2)
    assert [d.id for d in again] == [d.id for d in deliveries]
    assert [d.attempt for d in again] == [2, 2]
    assert again[0].headers["conveyor-last-error"] == "again"


async def test_headers_and_ordering_key_travel_with_the_message(make: Make) -> None:
    backend = await make()
    sent = OutgoingMessage(body=b'{"a":1}', headers={"trace": "t-1"}, ordering_key="k-9")
    await backend.publish(sent)
    (delivery,) = await receive(backend, 1)
    assert delivery.headers["trace"] == "t-1" and delivery.ordering_key == "k-9"
    assert await backend.retry(delivery, delay_s=0.3, error=None)
    (again,) = await receive(backend, 1)
    assert again.headers["trace"] == "t-1" and again.ordering_key == "k-9"
    assert await backend.ack(again)


async def test_a_short_retry_delay_goes_through_the_smallest_bucket(make: Make) -> None:
    backend = await make()
    await backend.publish(message())
    (delivery,) = await receive(backend, 1)
    retried_at = time.monotonic()
    assert await backend.retry(delivery, delay_s=0.8, error="soon")
    delayed = (await backend.stats()).delayed
    if time.monotonic() - retried_at < 0.7:  # else it may have left already
        assert delayed == 1
    (again,) = await receive(backend, 1)
    assert time.monotonic() - retried_at >= 0.75
    assert again.attempt == 2
    assert await backend.ack(again)


async def test_dead_letters_page_delete_and_redrive_by_id(make: Make) -> None:
    backend = await make()
    await backend.publish_batch([message(n) for n in range(5)])
    for delivery in await receive(backend, 5):
        assert await backend.dead_letter(delivery, reason=f"bad {orjson.loads(delivery.body)['n']}")

    async def five_dead() -> bool:
        return (await backend.stats()).dead == 5

    await eventually(five_dead)
    first = await backend.dead_letters(limit=2)
    second = await backend.dead_letters(limit=2, cursor=first.next_cursor)
    third = await backend.dead_letters(limit=2, cursor=second.next_cursor)
    letters = first.items + second.items + third.items
    assert third.next_cursor is None and len({d.id for d in letters}) == 5
    assert sorted(d.last_error or "" for d in letters) == [f"bad {n}" for n in range(5)]
    assert all(d.dead_at_ms for d in letters)

    assert await backend.delete_dead_letters([letters[0].id, "no-such-id"]) == 1
    assert await backend.redrive([letters[1].id]) == 1
    (back,) = await receive(backend, 1)
    assert back.id == letters[1].message_id and back.attempt == 1
    assert await backend.ack(back)
    assert await backend.redrive() == 3
    assert len(await receive(backend, 3)) == 3


async def test_a_receiver_survives_a_cut_connection(make: Make) -> None:
    async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:
        backend = await make(url=f"amqp://127.0.0.1:{proxy.port}/", timeouts=QUICK)
        direct = await make(backend.queue.name)
        sent = [message(n) for n in range(5)]
        await direct.publish_batch(sent)
        (held,) = await receive(backend, 1)

        proxy.cut()

        async def noticed() -> bool:
            try:
                await backend.receive(1, wait_s=0.2)
            except ConnectionFailed:
                return True
            return False

        await eventually(noticed)
        assert not await backend.ack(held)  # its channel went with the connection
        proxy.restore()

        got: list[str] = []
        deadline = time.monotonic() + 30
        while len(set(got)) < len(sent) and time.monotonic() < deadline:
            try:
                deliveries = await backend.receive(5, wait_s=1)
            except ConnectionFailed:
                await asyncio.sleep(0.2)
                continue
            for delivery in deliveries:
                got.append(delivery.id)
                assert await backend.ack(delivery)
        assert set(got) == {m.id for m in sent}


HOLDER = """
import asyncio, sys
from conveyor.queues.rabbitmq import RabbitMQBackend
from tests.rabbitmq import queue_for

async def main(name: str, count: int) -> None:
    backend = RabbitMQBackend(*queue_for(name, visibility_timeout_s=300))
    await backend.open()
    held = 0
    while held < count:
        held += len(await backend.receive(count - held, wait_s=1))
    print("holding", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_messages_held_by_a_killed_process_come_back_counted(make: Make) -> None:
    backend = await make(visibility_timeout_s=300)
    sent = [message(n) for n in range(5)]
    await backend.publish_batch(sent)
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        backend.queue.name,
        "5",
        cwd=Path(__file__).parents[2],
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        async with asyncio.timeout(30):
            assert await holder.stdout.readline() == b"holding\n"
        assert (await backend.stats()).ready == 0
        holder.kill()  # SIGKILL: no goodbye to RabbitMQ
        await holder.wait()
        deliveries = await receive(backend, 5)
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
    assert sorted(d.id for d in deliveries) == sorted(m.id for m in sent)
    assert [d.attempt for d in deliveries] == [2] * 5
    for delivery in deliveries:
        assert await backend.ack(delivery)
