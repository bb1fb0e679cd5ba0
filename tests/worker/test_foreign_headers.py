"""Headers set by foreign producers (issue 28, item 1): a value out of its range is
ignored with a warning naming the message; it never keeps a message from its handler,
and never makes a dead-letter listing fail."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pamqp import common, encode
from pamqp.commands import Basic

from conveyor import Context, Reject, handler
from conveyor.platform import Platform
from conveyor.queues import base
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.model import Queue, QueueType
from conveyor.queues.rabbitmq.backend import RabbitMQBackend
from conveyor.worker.handlers import HandlerRegistry
from tests import sqs_support
from tests.worker.conftest import NewQueue, only
from tests.worker.helpers import drained, eventually, running

INT64_MAX = 2**63 - 1


@pytest.mark.every_backend
async def test_a_publish_time_out_of_range_is_ignored_and_its_dead_letters_list(
    platform: Platform,
    worker_queue: NewQueue,
    queue_type: str,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = await worker_queue(max_attempts=3)
    backend = await platform.backends.get(queue)
    # Given messages whose publish time no datetime can hold (the embedded queue's
    # column is a 64-bit integer: only brokers carry the 20-digit one)
    times = [INT64_MAX, -99_999_999_999_999_999]
    if queue_type != "embedded":
        times.append(99_999_999_999_999_999_999)
    ids = []
    for n, at in enumerate(times):
        message = OutgoingMessage(body=b'{"handler": "stamp", "n": %d}' % n, published_at_ms=at)
        ids.append((await backend.publish(message)).message_id)
    seen: dict[str, datetime] = {}

    @handler("stamp")
    async def stamp(context: Context) -> None:
        seen[context.message.id] = context.message.published_at
        raise Reject("kept for the listing")

    # When a worker runs them
    with caplog.at_level(logging.WARNING, logger="conveyor"):
        async with running(platform, queue, HandlerRegistry([stamp])):
            await eventually(
                lambda: drained(platform, queue, dead=len(ids)), what="all dead-lettered"
            )

    # Then each reached its handler once, with a publish time that makes sense
    assert sorted(seen) == sorted(ids)
    now = datetime.now(UTC)
    for when in seen.values():
        # (the embedded queue's column is Conveyor's own: shown clamped, not replaced)
        sane = datetime(1970, 1, 1, tzinfo=UTC) <= when <= now + timedelta(days=1)
        assert sane or queue_type == "embedded"
    if queue_type != "embedded":
        for message_id in ids:
            assert any(
                "conveyor-published-at" in r.getMessage() and message_id in r.getMessage()
                for r in caplog.records
            ), f"no warning names {message_id}"
    # and the dead letters list, with their ids, and can be deleted
    url = f"/api/v1/zstorage/queues/{queue.id}/dead-letters"
    listed = await client.get(url, headers=admin)
    assert listed.status_code == 200, listed.text
    letters = listed.json()["items"]
    assert sorted(d["message_id"] for d in letters) == sorted(ids)
    deleted = await client.post(
        f"{url}/delete", json={"ids": [d["id"] for d in letters]}, headers=admin
    )
    assert deleted.status_code == 200 and deleted.json()["count"] == len(ids)
    await eventually(lambda: drained(platform, queue, dead=0), what="dead letters deleted")


@only("rabbitmq")
async def test_an_amqp_timestamp_out_of_range_keeps_the_connection(
    platform: Platform, worker_queue: NewQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await worker_queue()
    backend = await platform.backends.get(queue)
    assert isinstance(backend, RabbitMQBackend)

    # Given a foreign message whose AMQP timestamp is 2**63-1 seconds (pamqp encodes
    # only datetimes, so this test writes the raw number)
    def raw_timestamp(value: object) -> bytes:
        assert isinstance(value, int)
        return common.Struct.timestamp.pack(value)

    monkeypatch.setitem(encode.METHODS, "timestamp", raw_timestamp)
    properties = Basic.Properties(message_id="far-future", delivery_mode=2)
    properties.timestamp = INT64_MAX  # type: ignore[assignment]
    await backend.send(b'{"handler": "ok", "n": 0}', properties, queue.name)
    monkeypatch.undo()
    # and a healthy message behind it
    await platform.publisher.publish_object(queue, {"handler": "ok", "n": 1})
    handled: list[tuple[int, datetime]] = []

    @handler("ok", auto_ack=True)
    async def ok(context: Context) -> None:
        handled.append((context.message.payload["n"], context.message.published_at))

    # When a worker runs, both are handled: the connection survives the timestamp
    async with running(platform, queue, HandlerRegistry([ok])) as worker:
        await eventually(lambda: worker.counters.acked == 2, what="both acked")
    assert sorted(n for n, _ in handled) == [0, 1]
    assert all(at.year >= 2020 for _, at in handled)


async def _forge(platform: Platform, queue: Queue, body: bytes, header: str, value: str) -> str:
    """Publish `body` the way a foreign producer would, with `header` set to `value`."""
    backend = await platform.backends.get(queue)
    message_id = str(uuid.uuid4())
    if isinstance(backend, RabbitMQBackend):
        headers: dict[str, Any] = {base.HEADER_MESSAGE_ID: message_id, header: value}
        properties = Basic.Properties(headers=headers, message_id=message_id, delivery_mode=2)
        await backend.send(body, properties, queue.name)
    elif queue.type is QueueType.SQS:
        async with sqs_support.raw_client() as sqs:
            await sqs.send_message(
                QueueUrl=queue.url,
                MessageBody=body.decode(),
                MessageAttributes={
                    base.HEADER_MESSAGE_ID: {"DataType": "String", "StringValue": message_id},
                    header: {"DataType": "Number", "StringValue": value},
                },
            )
    else:  # Kafka: headers go out as they are given
        await backend.publish(OutgoingMessage(body=body, id=message_id, headers={header: value}))
    return message_id


FORGED_ATTEMPTS = {
    "rabbitmq": ("conveyor-attempt", ["9999", "-5"]),
    "kafka": ("conveyor-deliveries", ["-1000000", "9999"]),
    "sqs": ("conveyor-attempt", ["9999", "-5"]),
}


@only("rabbitmq", "kafka", "sqs")
async def test_forged_attempt_counts_are_clamped(
    platform: Platform, worker_queue: NewQueue, queue_type: str
) -> None:
    # Given messages whose attempt count a producer forged, far above and below range
    queue = await worker_queue(max_attempts=3, retry_backoff_s=0.05, retry_backoff_max_s=0.1)
    header, values = FORGED_ATTEMPTS[queue_type]
    forged = {
        await _forge(platform, queue, b'{"handler": "fail"}', header, value): value
        for value in values
    }
    runs: dict[str, list[int]] = {message_id: [] for message_id in forged}

    @handler("fail")
    async def fail(context: Context) -> None:
        runs[context.message.id].append(context.message.attempt)
        raise RuntimeError("always fails")

    # When a worker runs them with a handler that always fails
    async with running(platform, queue, HandlerRegistry([fail])):
        await eventually(lambda: drained(platform, queue, dead=2), what="both dead-lettered")

    # Then each ran, with attempts within [1, 3], and was dead-lettered with its error;
    # a count below the range gets every attempt, where the broker's own count
    # (SQS) is not there to win
    letters = (await (await platform.backends.get(queue)).dead_letters(limit=10)).items
    assert sorted(d.message_id for d in letters) == sorted(forged)
    for letter in letters:
        attempts = runs[letter.message_id]
        assert attempts and all(1 <= a <= 3 for a in attempts), (forged, runs)
        assert attempts == sorted(attempts) and attempts[-1] == 3
        assert letter.attempts == 3
        assert "RuntimeError: always fails" in (letter.last_error or "")
    low = next(m for m, v in forged.items() if v.startswith("-"))
    assert runs[low] == [1, 2, 3]


@only("rabbitmq", "kafka")
async def test_control_characters_of_a_message_id_are_escaped_in_the_log(
    platform: Platform, worker_queue: NewQueue, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a foreign message whose id holds a carriage return, a NUL and an ESC
    queue = await worker_queue(max_attempts=2, retry_backoff_s=0.05, retry_backoff_max_s=0.1)
    backend = await platform.backends.get(queue)
    forged = "id\r\x00\x1b[31m-forged\nline"
    body = b'{"handler": "flaky"}'
    if isinstance(backend, RabbitMQBackend):
        headers: dict[str, Any] = {base.HEADER_MESSAGE_ID: forged}
        await backend.send(body, Basic.Properties(headers=headers, delivery_mode=2), queue.name)
    else:
        await backend.publish(OutgoingMessage(body=body, id=forged))

    @handler("flaky")
    async def flaky(context: Context) -> None:
        context.log.info("handling")
        if context.message.attempt == 1:
            raise RuntimeError("first attempt fails")
        context.runtime.ack_message()

    # When a worker fails it once, then acks it
    with caplog.at_level(logging.INFO, logger="conveyor"):
        async with running(platform, queue, HandlerRegistry([flaky])) as worker:
            await eventually(lambda: worker.counters.acked == 1, what="acked")

    # Then every line naming it shows the characters escaped, none raw
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("conveyor")]
    naming = [line for line in lines if "-forged" in line]
    assert len(naming) >= 4, lines  # handled twice, and the handler's own lines
    assert all("id\\r\\x00\\x1b[31m-forged\\nline" in line for line in naming), naming
    assert not [line for line in lines if any(ord(c) < 32 for c in line)]
