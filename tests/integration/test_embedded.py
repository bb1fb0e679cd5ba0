"""Embedded-queue behaviour beyond the shared contract: leases, crash loops, processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage, QueueBackend
from conveyor.queues.embedded import LEASE_EXPIRED_ERROR
from tests.contract.queue_contract import eventually, receive


async def test_a_stale_holder_cannot_settle_what_it_lost(platform: Platform) -> None:
    queue = await platform.queues.create(
        {"name": "q", "type": "embedded", "options": {"visibility_timeout_s": 0.3}}
    )
    backend = await platform.backends.connect(queue)
    await backend.publish(OutgoingMessage(body=b'{"a": 1}'))
    (stale,) = await receive(backend, 1)
    (current,) = await receive(backend, 1)  # after the lease expired
    assert current.attempt == 2
    assert not await backend.ack(stale)
    assert not await backend.retry(stale, delay_s=0, error="x")
    assert not await backend.dead_letter(stale, reason="x")
    assert not await backend.extend_lease(stale, seconds=10)
    assert await backend.extend_lease(current, seconds=10)
    assert await backend.ack(current)


async def test_a_message_that_keeps_crashing_its_worker_is_dead_lettered(
    platform: Platform,
) -> None:
    options = {"visibility_timeout_s": 0.2, "max_attempts": 2}
    queue = await platform.queues.create({"name": "crashy", "type": "embedded", "options": options})
    backend = await platform.backends.connect(queue)
    await backend.publish(OutgoingMessage(body=b'{"poison": true}'))
    first = await receive(backend, 1)
    second = await receive(backend, 1)
    assert [d.attempt for d in first + second] == [1, 2]

    async def dead() -> bool:
        # Never a third attempt; once the second lease ends, a claim buries the message.
        assert await backend.receive(10) == []
        return (await backend.stats()).dead == 1

    await eventually(dead)
    stats = await backend.stats()
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 1)
    (letter,) = (await backend.dead_letters(limit=10)).items
    assert letter.last_error == LEASE_EXPIRED_ERROR


async def test_without_dead_letters_exhausted_messages_are_dropped(platform: Platform) -> None:
    options = {"max_attempts": 1, "dead_letter": False}
    queue = await platform.queues.create({"name": "nodlq", "type": "embedded", "options": options})
    backend = await platform.backends.connect(queue)
    await backend.publish(OutgoingMessage(body=b"{}"))
    (delivery,) = await receive(backend, 1)
    assert await backend.dead_letter(delivery, reason="no")
    stats = await backend.stats()
    assert (stats.ready, stats.in_flight, stats.dead, stats.delayed) == (0, 0, 0, 0)


async def test_concurrent_receivers_never_share_a_message(platform: Platform) -> None:
    queue = await platform.queues.create({"name": "shared", "type": "embedded"})
    backend = await platform.backends.connect(queue)
    await backend.publish_batch([OutgoingMessage(body=orjson.dumps({"n": n})) for n in range(200)])

    async def consume() -> list[str]:
        got: list[str] = []
        while batch := await backend.receive(7):
            got += [d.id for d in batch]
            for delivery in batch:
                await backend.ack(delivery)
        return got

    results = await asyncio.gather(*(consume() for _ in range(8)))
    claimed = [i for r in results for i in r]
    assert len(claimed) == len(set(claimed)) == 200


CLAIMER = """
import asyncio, json, sys
from conveyor.config import Settings
from conveyor.platform import Platform

async def main():
    settings = Settings(_env_file=None, **json.loads(sys.argv[1])).resolved()
    async with Platform(settings) as platform:
        queue = await platform.queues.get_by_name("multi")
        backend = await platform.backends.connect(queue)
        stop = False
        while not stop:  # until this process gets one of the stop messages
            for delivery in await backend.receive(5, wait_s=0.5):
                if json.loads(delivery.body) == {"stop": True}:
                    if stop:  # a second stop belongs to another process
                        assert await backend.release(delivery)
                        continue
                    stop = True
                else:
                    print(delivery.id, flush=True)
                assert await backend.ack(delivery)

asyncio.run(main())
"""


@pytest.mark.slow
async def test_several_processes_on_one_database_claim_each_message_once(
    platform: Platform, tmp_path: Path
) -> None:
    """FI-10 for the queue itself: publisher and consumer processes on one SQLite file."""
    queue = await platform.queues.create({"name": "multi", "type": "embedded"})
    backend = await platform.backends.connect(queue)
    settings = platform.settings
    config = json.dumps(
        {
            "database_url": settings.database_url,
            "database_schema": settings.database_schema,
            "secret_key": settings.secret_key.get_secret_value(),
            "data_dir": str(tmp_path),
        }
    )
    consumers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLAIMER, config, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    try:
        await publish_and_check(backend, consumers)
    finally:
        for consumer in consumers:
            if consumer.returncode is None:
                consumer.kill()
                await consumer.wait()


async def publish_and_check(
    backend: QueueBackend, consumers: list[asyncio.subprocess.Process]
) -> None:
    published = []
    for n in range(30):
        results = await asyncio.gather(
            *(
                backend.publish(OutgoingMessage(body=orjson.dumps({"n": n, "i": i})))
                for i in range(10)
            )
        )
        published += [r.message_id for r in results]
    # Claims go oldest first, so once every stop is taken, so is everything before it.
    for _ in consumers:
        await backend.publish(OutgoingMessage(body=b'{"stop": true}'))
    outputs = [await c.communicate() for c in consumers]
    for consumer, (_, err) in zip(consumers, outputs, strict=True):
        assert consumer.returncode == 0, err.decode()
    claimed = [line for out, _ in outputs for line in out.decode().split()]
    assert sorted(claimed) == sorted(published)
    assert len(set(claimed)) == len(claimed)
