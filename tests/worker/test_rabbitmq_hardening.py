"""RabbitMQ-specific hardening of issue 28: copies that fit in one frame (item 4),
redrive-all while dead letters are listed (item 7), what the log says of acks and of
lost connections (item 8)."""

from __future__ import annotations

import asyncio
from typing import Any

from pamqp.commands import Basic

from conveyor import Context, handler
from conveyor.platform import Platform
from conveyor.queues import base
from conveyor.queues.rabbitmq.backend import RabbitMQBackend
from conveyor.queues.rabbitmq.topology import Topology
from conveyor.worker.handlers import HandlerRegistry
from tests import rabbitmq
from tests.worker.conftest import NewQueue, only
from tests.worker.helpers import Recorder, drained, eventually, running


@only("rabbitmq")
async def test_a_header_near_the_frame_limit_never_drops_the_connection(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue(max_attempts=3, retry_backoff_s=0.05, retry_backoff_max_s=0.1)
    backend = await platform.backends.get(queue)
    assert isinstance(backend, RabbitMQBackend)
    # Given a foreign message with a 128.5 kB header (it fits in RabbitMQ's 128 KiB frame;
    # a retry copy carrying a long error as well would not)
    headers: dict[str, Any] = {base.HEADER_MESSAGE_ID: "poison", "x-big": "b" * 128_500}
    properties = Basic.Properties(headers=headers, message_id="poison", delivery_mode=2)
    await backend.send(b'{"handler": "poison"}', properties, queue.name)
    # and 20 healthy messages that are running while it is retried
    healthy = [
        (await platform.publisher.publish_object(queue, {"handler": "ok", "n": n}))["message-id"]
        for n in range(20)
    ]
    record = Recorder()
    retried = asyncio.Event()

    @handler("poison")
    async def poison(context: Context) -> None:
        if context.message.attempt == 3:
            retried.set()
        raise RuntimeError("e" * 5000)

    @handler("ok", auto_ack=True)
    async def ok(context: Context) -> None:
        start = record.enter()
        await asyncio.wait_for(retried.wait(), 15)
        record.leave(context.message.id, context.message.attempt, start)

    # When a worker runs them all at once
    async with running(platform, queue, HandlerRegistry([poison, ok]), concurrency=25) as worker:
        await eventually(lambda: drained(platform, queue, dead=1), what="the poison dead")
        await eventually(lambda: worker.counters.acked == 20, what="the healthy ones acked")

    # Then each healthy message ran once and was acked, none dead-lettered
    assert sorted(record.handled()) == sorted(healthy)
    assert {e.attempt for e in record.executions} == {1}
    # and the poison one is a dead letter with its real error, its big header dropped
    (letter,) = (await backend.dead_letters(limit=10)).items
    assert letter.message_id == "poison" and letter.attempts == 3
    assert "RuntimeError: eeee" in (letter.last_error or "")
    assert letter.headers.get("conveyor-dropped-headers") == "x-big", sorted(letter.headers)
    assert "x-big" not in letter.headers


@only("rabbitmq")
async def test_redrive_all_moves_every_dead_letter_while_others_list_them(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue()
    backend = await platform.backends.get(queue)
    assert isinstance(backend, RabbitMQBackend)
    # Given 2,000 dead letters
    total = 2000
    letters = Topology(queue.name).dead_letters
    for start in range(0, total, 200):
        await asyncio.gather(
            *(
                backend.send(b'{"handler": "x"}', _letter(n), letters)
                for n in range(start, start + 200)
            )
        )
    # and three other processes listing them, page after page (each its own connection)
    listers = [RabbitMQBackend(queue, rabbitmq.split_url()[1]) for _ in range(3)]
    pages = 0

    async def browse(lister: RabbitMQBackend) -> None:
        nonlocal pages
        await lister.open()
        try:
            for _ in range(4):
                await lister.dead_letters(limit=500)
                pages += 1
        finally:
            await lister.close()

    browsing = [asyncio.create_task(browse(lister)) for lister in listers]
    await eventually(lambda: pages >= 1, what="the listers under way")

    # When all are redriven
    moved = await backend.redrive(None)
    await asyncio.gather(*browsing)

    # Then "all" meant all
    assert moved == total
    sizes = await backend.stats()
    assert (sizes.dead, sizes.ready) == (0, total)


def _letter(n: int) -> Basic.Properties:
    headers: dict[str, Any] = {
        base.HEADER_MESSAGE_ID: f"m-{n}",
        "conveyor-dead-letter-id": f"d-{n}",
    }
    return Basic.Properties(headers=headers, message_id=f"m-{n}", delivery_mode=2)
