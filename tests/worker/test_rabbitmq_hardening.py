"""RabbitMQ-specific hardening of issue 28: copies that fit in one frame (item 4),
redrive-all while dead letters are listed (item 7), what the log says of acks and of
lost connections (item 8)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pamqp.commands import Basic

from conveyor import Context, handler
from conveyor.platform import Platform
from conveyor.queues import base
from conveyor.queues.rabbitmq.backend import RabbitMQBackend
from conveyor.queues.rabbitmq.topology import Topology
from conveyor.worker.handlers import HandlerRegistry
from tests import rabbitmq
from tests.tcp_proxy import TcpProxy
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


@only("rabbitmq")
async def test_acks_lost_with_a_half_open_connection_are_logged_as_such(
    platform: Platform, worker_queue: NewQueue, caplog: pytest.LogCaptureFixture
) -> None:
    rabbitmq.require()
    async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:
        # Given a worker whose connection to RabbitMQ goes through a proxy
        queue = await worker_queue()
        proxied = f"amqp://127.0.0.1:{proxy.port}/?heartbeat=30"
        queue = await platform.queues.update(queue.id, {"url": proxied})
        await platform.backends.discard(queue.id)
        ids = [
            (await platform.publisher.publish_object(queue, {"handler": "hold"}))["message-id"]
            for _ in range(3)
        ]
        release = asyncio.Event()
        entered: list[tuple[str, int]] = []

        @handler("hold", auto_ack=True)
        async def hold(context: Context) -> None:
            entered.append((context.message.id, context.message.attempt))
            await release.wait()

        with caplog.at_level(logging.INFO, logger="conveyor"):
            async with running(platform, queue, HandlerRegistry([hold])) as worker:
                await eventually(lambda: len(entered) == 3, what="3 handlers running")
                # When the network drops all it gets, then resets, while they ack
                proxy.stall()
                release.set()
                await eventually(lambda: _count(caplog, "result=ack-sent") == 3, what="acks")
                proxy.cut()
                proxy.restore()
                # the broker hands the three out again, and they are handled again
                await eventually(
                    lambda: (
                        sorted(entered) == sorted([(i, 1) for i in ids] + [(i, 2) for i in ids])
                    ),
                    timeout_s=30,
                    what="the three delivered again",
                )
                await eventually(lambda: worker.counters.acked == 6, what="acked again")

    # Then the log said what happened: acks sent (not known to be received), the
    # connection lost, the messages delivered again, the connection back
    assert _count(caplog, "lost the connection to RabbitMQ") >= 1
    for message_id in ids:
        assert _count(caplog, f"RabbitMQ delivered message {message_id} again") == 1
    assert _count(caplog, "reconnected to RabbitMQ") >= 1
    assert _count(caplog, "result=acked") == 0


def _count(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.name.startswith("conveyor"))
