"""FI-08: poison messages are dead-lettered (at once when they cannot be dispatched)
while the rest of the traffic keeps flowing."""

from __future__ import annotations

import logging

import pytest

from conveyor import Context, handler
from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage
from conveyor.worker.handlers import HandlerRegistry
from tests.worker.conftest import NewQueue
from tests.worker.helpers import MaxJitter, Recorder, drained, eventually, running


@pytest.mark.every_backend
async def test_poison_is_dead_lettered_and_other_traffic_keeps_flowing(
    platform: Platform, worker_queue: NewQueue
) -> None:
    queue = await worker_queue(max_attempts=3, retry_backoff_s=0.1, retry_backoff_max_s=1)
    backend = await platform.backends.get(queue)
    record = Recorder()

    @handler("good", auto_ack=True)
    async def good(context: Context) -> None:
        start = record.enter()
        record.leave(context.message.payload["n"], context.message.attempt, start)

    @handler("explode")
    async def explode(context: Context) -> None:
        start = record.enter()
        record.leave("explode", context.message.attempt, start)
        raise RuntimeError("kaboom")

    # Given poison of every kind mixed with 50 good messages
    poison = {
        b"{not json": "undecodable payload",
        b"[1, 2, 3]": "not an object",
        b'{"no": "handler"}': 'no "handler" field',
        b'{"handler": 42}': 'no "handler" field',
        b'{"handler": "missing"}': "no handler named 'missing'",
    }
    ids = {}
    for body, reason in poison.items():
        ids[(await backend.publish(OutgoingMessage(body=body))).message_id] = reason
    explode_id = (await platform.publisher.publish_object(queue, {"handler": "explode"}))[
        "message-id"
    ]
    for n in range(50):
        await platform.publisher.publish_object(queue, {"handler": "good", "n": n})

    # When the worker runs
    registry = HandlerRegistry([good, explode])
    async with running(platform, queue, registry, rng=MaxJitter()) as worker:
        await eventually(lambda: drained(platform, queue, dead=6), what="poison dead-lettered")

    # Then every good message was handled, and each poison message has its reason
    assert record.handled().count("explode") == 3
    assert sorted(k for k in record.handled() if k != "explode") == list(range(50))
    letters = {d.message_id: d for d in (await backend.dead_letters(limit=50)).items}
    assert set(letters) == {*ids, explode_id}
    for message_id, reason in ids.items():
        assert reason in (letters[message_id].last_error or ""), letters[message_id]
        assert letters[message_id].attempts == 1  # at once, never retried
    assert letters[explode_id].attempts == 3
    assert "RuntimeError: kaboom" in (letters[explode_id].last_error or "")
    # with backoff between the attempts (0.1 s, then 0.2 s at most jitter)
    runs = record.of("explode")
    assert runs[1].start - runs[0].end >= 0.1
    assert runs[2].start - runs[1].end >= 0.2
    assert worker.counters.dead_lettered == 6
    assert worker.counters.acked == 50


async def test_the_log_line_of_an_unknown_handler_names_the_handler_asked_for(
    platform: Platform, worker_queue: NewQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = await worker_queue()

    @handler("known", auto_ack=True)
    async def known(context: Context) -> None:
        pass

    await platform.publisher.publish_object(queue, {"handler": "send_invoice"})
    await platform.publisher.publish_object(queue, {"no": "handler"})
    with caplog.at_level(logging.INFO, logger="conveyor"):
        async with running(platform, queue, HandlerRegistry([known])):
            await eventually(lambda: drained(platform, queue, dead=2), what="both dead-lettered")
    lines = [r.getMessage() for r in caplog.records if "message handled" in r.getMessage()]
    assert len(lines) == 2, lines
    assert any("handler=send_invoice" in line and "result=dead" in line for line in lines)
    assert any("handler=-" in line for line in lines)  # none was named
