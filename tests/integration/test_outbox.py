"""The table→queue link machinery below the records API: the write hook, the outbox
and the relay, against the embedded queue and a real RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson
import pytest
import sqlalchemy as sa

import conveyor.links.outbox as outbox_module
import conveyor.platform as platform_module
from conveyor.config import Settings
from conveyor.db.tables import outbox as outbox_table
from conveyor.exceptions import BackendError, BadRequest
from conveyor.links.model import LinkSpec
from conveyor.links.relay import Relay, RelayOptions
from conveyor.links.rows import Due, OutboxRow, Status
from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage, PublishResult
from conveyor.queues.model import Queue
from conveyor.queues.rabbitmq.backend import RabbitMQBackend
from tests import rabbitmq
from tests.contract.queue_contract import receive
from tests.tcp_proxy import TcpProxy


@dataclass(frozen=True)
class FakeTable:
    """What the write hook sees of a ZStorage table."""

    name: str
    version: int = 1

    @property
    def id(self) -> str:
        return f"id-{self.name}"


TABLE = FakeTable("estudante")


async def write(
    platform: Platform,
    event: str,
    record: dict[str, Any] | None,
    previous: dict[str, Any] | None = None,
    *,
    fail: bool = False,
) -> None:
    """What a record write does: its own change plus the hook, in one transaction."""

    class Rollback(Exception):
        pass

    try:
        async with platform.db.write() as conn:
            await platform.link_hook(conn, TABLE, event, record, previous)
            if fail:
                raise Rollback
    except Rollback:
        pass


async def link(platform: Platform, queue: Queue, **body: Any) -> None:
    await platform.links.put(TABLE.name, queue.id, LinkSpec.parse(TABLE.name, body))


async def test_an_embedded_link_publishes_exactly_the_committed_writes(platform: Platform) -> None:
    queue = await platform.queues.create({"name": "changes", "type": "embedded"})
    await link(platform, queue, events=["create", "update", "delete"], handler="estudante_changed")
    ana = {"id": 1, "nome": "Ana", "idade": 20}
    await write(platform, "create", ana)
    await write(platform, "create", {"id": 2, "nome": "Rolled back"}, fail=True)
    await write(platform, "update", ana | {"idade": 21, "updated_at": "later"}, ana)
    await write(platform, "delete", None, ana)
    backend = await platform.backends.connect(queue)
    deliveries = await receive(backend, 3)
    bodies = [orjson.loads(d.body) for d in deliveries]
    assert [b["event"] for b in bodies] == ["create", "update", "delete"]
    assert all(b["handler"] == "estudante_changed" and b["table"] == "estudante" for b in bodies)
    assert bodies[0]["record"] == ana and "previous" not in bodies[0]
    assert bodies[1]["changed"] == ["idade"] and bodies[1]["previous"] == ana
    assert bodies[2]["record"] == ana and bodies[2]["previous"] == ana
    assert all(d.ordering_key == "estudante:1" for d in deliveries)
    assert await backend.receive(10) == []
    counts = await platform.outbox.counts()
    assert counts == {"pending": 0, "sent": 3, "failed": 0}
    rows = await platform.outbox.page(record_id="1")
    # Each outbox row names its message row (on PostgreSQL both come from one statement).
    assert {r.message_id: r.backend_id for r in rows} == {d.id: d.backend_id for d in deliveries}
    assert all(r.status is Status.SENT and r.sent_at is not None for r in rows)


async def test_events_not_linked_publish_nothing(platform: Platform) -> None:
    queue = await platform.queues.create({"name": "creates", "type": "embedded"})
    await link(platform, queue, events=["create"])
    await write(platform, "update", {"id": 1}, {"id": 1})
    await write(platform, "delete", None, {"id": 1})
    assert (await (await platform.backends.connect(queue)).stats()).ready == 0
    await write(platform, "create", {"id": 1})
    assert (await (await platform.backends.connect(queue)).stats()).ready == 1


@pytest.fixture
async def rabbit_queue(platform: Platform) -> AsyncIterator[Queue]:
    rabbitmq.require()
    name = rabbitmq.unique_name("outbox")
    queue = await platform.queues.create(rabbitmq.registration(name))
    await platform.backends.get(queue)  # declares the queue, so tests can read it at once
    yield queue
    await rabbitmq.delete_queues(name)


async def drain_broker(
    name: str, count: int, timeout_s: float = 20
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Read `count` messages straight from RabbitMQ with aio-pika."""
    connection = await aio_pika.connect(rabbitmq.RABBITMQ_URL)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(name)
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                got.append(message)
        extra = await queue.get(fail=False, no_ack=True)
        assert extra is None, f"more than {count} messages: {extra.body!r}"
    finally:
        await connection.close()
    assert len(got) == count, f"got {len(got)} of {count}"
    return got


@pytest.mark.rabbitmq
async def test_outbox_rows_reach_rabbitmq_in_order(platform: Platform, rabbit_queue: Queue) -> None:
    await link(platform, rabbit_queue, events=["create", "update"])
    record = {"id": 7, "n": 0}
    await write(platform, "create", record)
    for n in range(1, 20):
        await write(platform, "update", record | {"n": n}, record | {"n": n - 1})
    await write(platform, "update", record | {"n": 99}, record, fail=True)
    messages = await drain_broker(rabbit_queue.name, 20)
    bodies = [orjson.loads(m.body) for m in messages]
    assert [b["record"]["n"] for b in bodies] == list(range(20))
    rows = await sent_rows(platform, 20)
    assert {r.message_id for r in rows} == {m.message_id for m in messages}


@pytest.mark.rabbitmq
async def test_while_the_broker_is_down_writes_succeed_and_wait_in_the_outbox(
    platform: Platform, rabbit_queue: Queue
) -> None:
    async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:
        await platform.queues.update(rabbit_queue.id, {"url": f"amqp://127.0.0.1:{proxy.port}/"})
        await platform.backends.discard(rabbit_queue.id)
        await link(platform, rabbit_queue, events=["create", "update"])
        proxy.cut()
        for n in range(5):
            await write(platform, "create", {"id": n})
            await write(platform, "update", {"id": n, "v": 2}, {"id": n})

        async def all_waiting() -> bool:
            counts = await platform.outbox.counts()
            rows = await platform.outbox.page(status=Status.PENDING)
            return counts["pending"] == 10 and any(r.attempts > 0 for r in rows)

        deadline = time.monotonic() + 20
        while not await all_waiting():
            assert time.monotonic() < deadline, await platform.outbox.counts()
            await asyncio.sleep(0.2)
        failing = await platform.outbox.page(status=Status.PENDING)
        assert all(r.last_error for r in failing if r.attempts)
        proxy.restore()
        await retry_now(platform)
        messages = await drain_broker(rabbit_queue.name, 10, timeout_s=40)
    by_record: dict[int, list[str]] = {}
    for m in messages:
        body = orjson.loads(m.body)
        by_record.setdefault(body["record"]["id"], []).append(body["event"])
    assert by_record == {n: ["create", "update"] for n in range(5)}
    assert (await platform.outbox.counts())["pending"] == 0


async def retry_now(platform: Platform) -> None:
    """Skip the backoff the failures earned (the test does not want to wait a minute)."""
    for row in await platform.outbox.page(status=Status.PENDING, limit=500):
        with contextlib.suppress(BadRequest):  # sent in the meantime
            await platform.outbox.retry(row.id)
    platform.relay.wake()


@pytest.mark.rabbitmq
async def test_the_writing_process_hands_its_rows_to_its_relay_without_a_claim(
    platform: Platform, rabbit_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    await link(platform, rabbit_queue, events=["create"])
    claim = platform.outbox.claim
    claimed: list[int] = []

    async def spied(relay_id: str, *, limit: int, lease_ms: int) -> list[OutboxRow]:
        rows = await claim(relay_id, limit=limit, lease_ms=lease_ms)
        claimed.extend(row.id for row in rows)
        return rows

    monkeypatch.setattr(platform.outbox, "claim", spied)
    for n in range(30):
        await write(platform, "create", {"id": n})
    messages = await drain_broker(rabbit_queue.name, 30)
    assert sorted(orjson.loads(m.body)["record"]["id"] for m in messages) == list(range(30))
    assert len(await sent_rows(platform, 30)) == 30
    assert claimed == []  # every row went from the write to the relay directly


@pytest.mark.rabbitmq
async def test_rows_of_writes_that_run_together_go_in_one_publish(
    platform: Platform, rabbit_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    await link(platform, rabbit_queue, events=["create"])
    # It may wait that long for writes under way; a write alone must not wait at all.
    platform.relay.options = RelayOptions(handoff_linger_s=3600)
    batches: list[int] = []
    publish_batch = RabbitMQBackend.publish_batch

    async def counted(self: RabbitMQBackend, messages: Sequence[OutgoingMessage]) -> Any:
        batches.append(len(messages))
        return await publish_batch(self, messages)

    monkeypatch.setattr(RabbitMQBackend, "publish_batch", counted)
    # Twenty writes at once: the first row handed over waits for the other writes
    await asyncio.gather(*(write(platform, "create", {"id": n}) for n in range(20)))
    messages = await drain_broker(rabbit_queue.name, 20)
    assert sorted(orjson.loads(m.body)["record"]["id"] for m in messages) == list(range(20))
    assert batches == [20]

    # A write alone waits for nothing (drained within its deadline, not after the linger)
    await write(platform, "create", {"id": 20})
    assert len(await drain_broker(rabbit_queue.name, 1)) == 1
    assert batches == [20, 1]


@pytest.mark.rabbitmq
async def test_a_batch_publishes_while_the_one_before_is_marked_sent(
    platform: Platform, rabbit_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marking sent costs a commit: the relay publishes the next hand-off meanwhile."""
    await link(platform, rabbit_queue, events=["create"])
    mark_sent = platform.outbox.mark_sent
    marking, finish = asyncio.Event(), asyncio.Event()

    async def slow(relay_id: str, sent: Sequence[tuple[int, str]]) -> None:
        marking.set()
        await finish.wait()
        await mark_sent(relay_id, sent)

    monkeypatch.setattr(platform.outbox, "mark_sent", slow)
    await write(platform, "create", {"id": 1})
    await asyncio.wait_for(marking.wait(), 5)  # record 1 published, its mark held
    await write(platform, "create", {"id": 2})
    (first, second) = await drain_broker(rabbit_queue.name, 2)  # 2 went out meanwhile
    assert [orjson.loads(m.body)["record"]["id"] for m in (first, second)] == [1, 2]
    assert (await platform.outbox.counts())["sent"] == 0
    finish.set()
    assert len(await sent_rows(platform, 2)) == 2


@pytest.mark.rabbitmq
async def test_a_claim_waiting_for_a_held_mark_does_not_hold_back_the_next_hand_off(
    platform: Platform, rabbit_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim comes due (the poll, or a wake) while a batch's mark is held; the claim
    waits for that mark, and the next write's message goes out meanwhile. (The claim
    used to run in the loop that publishes the hand-offs: under load, when the poll came
    before the next hand-off, nothing more was published until the mark committed.)"""
    await link(platform, rabbit_queue, events=["create"])
    relay = platform.relay
    mark_sent, marked = platform.outbox.mark_sent, relay._marked
    marking, finish, claim_waits = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def held(relay_id: str, sent: Sequence[tuple[int, str]]) -> None:
        marking.set()
        await finish.wait()
        await mark_sent(relay_id, sent)

    async def noted() -> None:
        claim_waits.set()
        await marked()

    monkeypatch.setattr(platform.outbox, "mark_sent", held)
    monkeypatch.setattr(relay, "_marked", noted)
    try:
        await write(platform, "create", {"id": 1})
        await asyncio.wait_for(marking.wait(), 5)  # record 1 published, its mark held
        claim_waits.clear()
        relay.wake()  # a claim is due now, as at the poll
        await asyncio.wait_for(claim_waits.wait(), 5)  # ... and waits for that mark
        await write(platform, "create", {"id": 2})
        (first, second) = await drain_broker(rabbit_queue.name, 2, timeout_s=5)
        assert [orjson.loads(m.body)["record"]["id"] for m in (first, second)] == [1, 2]
    finally:
        finish.set()
    assert len(await sent_rows(platform, 2)) == 2


@pytest.mark.rabbitmq
async def test_a_failed_mark_leaves_the_rows_to_be_sent_again(
    platform: Platform, rabbit_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refused to mark a published hand-off sent: the row stays leased and
    is published again (same message id) when its lease ends; the relay goes on."""
    await platform.stop_relay()
    relay = platform.relay  # the one this process's writes hand their rows to
    relay.options = RelayOptions(lease_s=0.5, poll_interval_s=0.1)
    await link(platform, rabbit_queue, events=["create"])
    failures = 0

    async def refuse_once(relay_id: str, sent: Sequence[tuple[int, str]]) -> None:
        nonlocal failures
        failures += 1
        if failures == 1:
            raise RuntimeError("the database went away")
        await mark_sent(relay_id, sent)

    mark_sent = platform.outbox.mark_sent
    monkeypatch.setattr(platform.outbox, "mark_sent", refuse_once)
    task = asyncio.create_task(relay.run())
    try:
        await write(platform, "create", {"id": 1})
        first, again = await drain_broker(rabbit_queue.name, 2)
        assert first.message_id == again.message_id
        assert len(await sent_rows(platform, 1)) == 1
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)


async def sent_rows(platform: Platform, count: int, timeout_s: float = 10) -> list[OutboxRow]:
    """The sent rows, once `count` of them are (marks commit in the background)."""
    deadline = time.monotonic() + timeout_s
    while (await platform.outbox.counts())["sent"] < count:
        assert time.monotonic() < deadline, f"fewer than {count} outbox rows marked sent"
        await asyncio.sleep(0.05)
    return await platform.outbox.page(status=Status.SENT, limit=100)


@pytest.mark.rabbitmq
async def test_a_stopping_relay_gives_back_the_rows_it_was_handed(
    platform: Platform, rabbit_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows handed over but not yet published are released, not left leased for 30 s."""
    await link(platform, rabbit_queue, events=["create"])
    relay = platform.relay
    relay.options = RelayOptions(max_publishing=1)  # the others wait for the first batch
    publish_rows = relay._publish_rows
    publishing, resume = asyncio.Event(), asyncio.Event()

    async def held(rows: list[Due]) -> list[tuple[int, str]]:
        if rows:  # a claim that found nothing publishes no rows
            publishing.set()
            await resume.wait()
        return await publish_rows(rows)

    monkeypatch.setattr(relay, "_publish_rows", held)
    await write(platform, "create", {"id": 0})
    await asyncio.wait_for(publishing.wait(), 5)  # the relay holds row 0
    for n in range(1, 4):
        await write(platform, "create", {"id": n})  # handed over, waiting behind it
    stopping = asyncio.create_task(platform.stop_relay())
    resume.set()
    await stopping
    pending = await platform.outbox.page(status=Status.PENDING)
    assert sorted(int(r.record_id or -1) for r in pending) == [1, 2, 3]
    free = await platform.outbox.claim("another", limit=10, lease_ms=1000)
    assert sorted(r.id for r in free) == sorted(r.id for r in pending)
    assert len(await drain_broker(rabbit_queue.name, 1)) == 1


@pytest.mark.rabbitmq
async def test_a_relay_stop_that_times_out_still_gives_back_the_rows_it_was_handed(
    platform: Platform, rabbit_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop's timeout cuts short a batch slow to be confirmed; the rows handed over
    meanwhile are released all the same, and the relay can run again."""
    monkeypatch.setattr(platform_module, "RELAY_STOP_TIMEOUT_S", 0.5)
    await link(platform, rabbit_queue, events=["create"])
    relay = platform.relay
    publish_rows = relay._publish_rows
    held = asyncio.Event()

    async def slow(rows: list[Due]) -> list[tuple[int, str]]:
        if rows and not held.is_set():  # a claim that found nothing publishes no rows
            held.set()
            await asyncio.sleep(30)  # a broker slow to confirm
        return await publish_rows(rows)

    monkeypatch.setattr(relay, "_publish_rows", slow)
    await write(platform, "create", {"id": 0})
    await asyncio.wait_for(held.wait(), 5)
    async with platform.db.write() as conn:  # leased before the stop, committed after it
        await platform.link_hook(conn, TABLE, "create", {"id": 1}, None)
        stopping = asyncio.create_task(platform.stop_relay())
        while relay.lease_for_handoff(rabbit_queue.id) is not None:
            await asyncio.sleep(0)  # until the stop has begun
    await asyncio.wait_for(stopping, 5)
    free = await platform.outbox.claim("another", limit=10, lease_ms=1)
    assert [r.record_id for r in free] == ["1"]  # row 0 stays leased: it may have gone out
    clock = platform.outbox.clock
    monkeypatch.setattr(platform.outbox, "clock", lambda: clock() + 1000)  # that lease ends
    task = asyncio.create_task(relay.run())
    try:
        [message] = await drain_broker(rabbit_queue.name, 1)
        assert orjson.loads(message.body)["record"]["id"] == 1
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)


@pytest.mark.rabbitmq
async def test_a_batch_waiting_for_the_broker_does_not_hold_back_the_next_ones(
    platform: Platform, rabbit_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one batch of hand-offs waits for its confirms, later ones go out; a later
    change of a record in that batch still waits for it (order per record)."""
    await link(platform, rabbit_queue, events=["create", "update"])
    relay = platform.relay
    publish_rows = relay._publish_rows
    first, resume = asyncio.Event(), asyncio.Event()

    async def first_held(rows: list[Due]) -> list[tuple[int, str]]:
        if rows and not first.is_set():  # a claim that found nothing publishes no rows
            first.set()
            await resume.wait()
        return await publish_rows(rows)

    monkeypatch.setattr(relay, "_publish_rows", first_held)
    await write(platform, "create", {"id": 0, "v": 1})
    await asyncio.wait_for(first.wait(), 5)  # record 0's create is held
    await write(platform, "update", {"id": 0, "v": 2}, {"id": 0, "v": 1})
    for n in range(1, 4):
        await write(platform, "create", {"id": n, "v": 1})
    early = await drain_broker(rabbit_queue.name, 3)
    assert sorted(orjson.loads(m.body)["record"]["id"] for m in early) == [1, 2, 3]
    resume.set()
    late = [orjson.loads(m.body) for m in await drain_broker(rabbit_queue.name, 2)]
    assert [(b["event"], b["record"]["v"]) for b in late] == [("create", 1), ("update", 2)]
    assert len(await sent_rows(platform, 5)) == 5
    assert (await platform.outbox.counts())["pending"] == 0


async def test_a_retry_leaves_a_row_being_published_to_its_relay(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrying a row a relay holds (its lease running) does not let another claim it:
    it would be sent twice."""
    await platform.stop_relay()
    queue = await platform.queues.create({"name": "far", "type": "rabbitmq", "url": "amqp://x/"})
    await link(platform, queue, events=["create"])
    await write(platform, "create", {"id": 1})
    (held,) = await platform.outbox.claim("first", limit=10, lease_ms=60_000)
    await platform.outbox.retry(held.id)
    assert await platform.outbox.claim("second", limit=10, lease_ms=60_000) == []
    later = platform.outbox.clock() + 61_000
    monkeypatch.setattr(platform.outbox, "clock", lambda: later)  # the lease has ended
    (again,) = await platform.outbox.claim("second", limit=10, lease_ms=60_000)
    assert again.id == held.id


@pytest.mark.rabbitmq
async def test_several_relays_send_each_row_once(platform: Platform, rabbit_queue: Queue) -> None:
    await platform.stop_relay()
    await link(platform, rabbit_queue, events=["create"])
    for n in range(150):
        await write(platform, "create", {"id": n})
    relays = [
        Relay(platform.outbox, platform.queues, platform.backends, RelayOptions(batch=20))
        for _ in range(3)
    ]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        messages = await drain_broker(rabbit_queue.name, 150, timeout_s=40)
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.gather(*tasks)
    ids = [m.message_id for m in messages]
    assert len(set(ids)) == 150


@pytest.mark.rabbitmq
async def test_a_backend_closed_under_a_publish_does_not_stop_the_relay(
    platform: Platform,
    rabbit_queue: Queue,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The queue is edited (its backend closed) while the relay waits for confirms:
    that batch fails like a broker outage and is sent again; the relay lives on.

    Through a proxy that goes silent first: RabbitMQ confirms whatever reached it before
    a close, so a batch written in one go would otherwise be confirmed in time."""
    await platform.stop_relay()
    async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:
        await platform.queues.update(rabbit_queue.id, {"url": f"amqp://127.0.0.1:{proxy.port}/"})
        await platform.backends.discard(rabbit_queue.id)
        await link(platform, rabbit_queue, events=["create"])
        for n in range(500):
            await write(platform, "create", {"id": n})
        publish_batch = RabbitMQBackend.publish_batch
        cut: list[int] = []

        async def closed_under_the_first(
            backend: RabbitMQBackend, messages: Sequence[OutgoingMessage]
        ) -> list[PublishResult]:
            if cut:
                return await publish_batch(backend, messages)
            cut.append(len(messages))
            proxy.stall()
            publishing = asyncio.create_task(publish_batch(backend, messages))
            channel = await backend._channel()
            while not channel.confirmations and not publishing.done():
                await asyncio.sleep(0)  # until the batch waits for its confirms
            closing = asyncio.create_task(platform.backends.discard(rabbit_queue.id))
            await asyncio.sleep(0.2)
            proxy.cut()  # the silent broker is gone: the close ends at once
            proxy.restore()
            await closing
            return await publishing

        monkeypatch.setattr(RabbitMQBackend, "publish_batch", closed_under_the_first)
        caplog.set_level("INFO", logger="conveyor.links.relay")
        options = RelayOptions(batch=200, backoff_base_s=0.01, backoff_max_s=0.05)
        relay = Relay(platform.outbox, platform.queues, platform.backends, options)
        task = asyncio.create_task(relay.run())
        try:
            deadline = time.monotonic() + 30
            while (await platform.outbox.counts())["pending"] and time.monotonic() < deadline:
                assert not task.done(), "the relay stopped"
                await asyncio.sleep(0.05)
        finally:
            relay.stop()
            await asyncio.wait_for(task, 10)
    assert cut == [200]
    # That batch failed (how aiormq words a closed channel varies) and was retried.
    assert any("200 message(s)" in r.getMessage() for r in caplog.records)
    assert (await platform.outbox.counts())["pending"] == 0
    assert len(await drain_broker_distinct(rabbit_queue.name, 500)) == 500


async def drain_broker_distinct(name: str, count: int, timeout_s: float = 30) -> set[str]:
    """The distinct message ids in the queue (a cut-short batch may be sent twice)."""
    connection = await aio_pika.connect(rabbitmq.RABBITMQ_URL)
    seen: set[str] = set()
    try:
        queue = await (await connection.channel()).get_queue(name)
        deadline = time.monotonic() + timeout_s
        while len(seen) < count and time.monotonic() < deadline:
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.05)
            elif message.message_id is not None:
                seen.add(message.message_id)
    finally:
        await connection.close()
    return seen


@pytest.mark.rabbitmq
async def test_a_crash_before_marking_sent_resends_with_the_same_id(
    platform: Platform, rabbit_queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FI-06: the broker confirmed, the relay died before recording it."""
    await platform.stop_relay()
    await link(platform, rabbit_queue, events=["create"])
    await write(platform, "create", {"id": 1})
    crashing = Relay(platform.outbox, platform.queues, platform.backends, RelayOptions(lease_s=0.5))

    async def die(*_: object) -> None:
        raise RuntimeError("killed between confirm and mark_sent")

    monkeypatch.setattr(crashing.store, "mark_sent", die)
    with pytest.raises(RuntimeError):
        await crashing.relay_once()
    monkeypatch.undo()
    clock = platform.outbox.clock
    monkeypatch.setattr(platform.outbox, "clock", lambda: clock() + 1000)  # its lease ends
    survivor = Relay(platform.outbox, platform.queues, platform.backends)
    assert await survivor.relay_once() == 1
    first, second = await drain_broker(rabbit_queue.name, 2)
    assert first.message_id == second.message_id
    assert first.body == second.body
    assert (await platform.outbox.counts())["sent"] == 1


@pytest.mark.rabbitmq
async def test_sync_links_fail_the_write_when_the_broker_is_down(
    platform: Platform, rabbit_queue: Queue
) -> None:
    await platform.queues.update(rabbit_queue.id, {"url": "amqp://127.0.0.1:1/"})
    await link(platform, rabbit_queue, events=["create"], mode="sync")
    with pytest.raises(BackendError, match="rolled back"):
        await write(platform, "create", {"id": 1})
    assert await platform.outbox.counts() == {"pending": 0, "sent": 0, "failed": 0}


@pytest.mark.rabbitmq
async def test_sync_links_publish_before_the_commit(
    platform: Platform, rabbit_queue: Queue
) -> None:
    await link(platform, rabbit_queue, events=["create"], mode="sync")
    await write(platform, "create", {"id": 1})
    (message,) = await drain_broker(rabbit_queue.name, 1)
    assert orjson.loads(message.body)["record"] == {"id": 1}
    assert (await platform.outbox.counts())["sent"] == 1


async def test_rows_of_a_deleted_queue_are_marked_failed_and_retry_is_refused_once_sent(
    platform: Platform,
) -> None:
    queue = await platform.queues.create(
        {"name": "gone", "type": "rabbitmq", "url": "amqp://127.0.0.1:1/"}
    )
    await link(platform, queue, events=["create"])
    await platform.stop_relay()
    await write(platform, "create", {"id": 1})
    (row,) = await platform.outbox.page()
    assert row.status is Status.PENDING
    await platform.queues.delete(queue.id)
    assert await platform.outbox.page() == []  # the queue's rows go with it


async def test_a_platform_closed_at_once_does_not_wait_for_its_relay(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """stop() before the relay's task first ran: the relay must still stop at once."""
    platform = Platform(settings)
    await platform.migrate()
    await platform.open()
    await platform.close()  # the relay's task has not started yet
    assert "did not stop" not in caplog.text


async def test_sent_rows_are_counted_up_to_the_cap(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent rows pile up until pruned: the counts stop at a cap instead of reading them
    all, while pending and failed rows are counted exactly."""
    monkeypatch.setattr(outbox_module, "SENT_COUNT_CAP", 3)
    queue = await platform.queues.create({"name": "capped", "type": "embedded"})
    rows = [
        {
            "queue_id": queue.id,
            "table_name": "t",
            "record_id": str(i),
            "event": "create",
            "message_id": f"m{i}",
            "ordering_key": f"t:{i}",
            "payload": "{}",
            "status": status,
            "attempts": 0,
            "next_attempt_at": 0,
            "created_at": 0,
        }
        for i, status in enumerate(["sent"] * 5 + ["pending"] * 4 + ["failed"] * 2)
    ]
    async with platform.db.write() as conn:
        await conn.execute(sa.insert(outbox_table), rows)
    assert await platform.outbox.counts() == {"pending": 4, "sent": 3, "failed": 2}
