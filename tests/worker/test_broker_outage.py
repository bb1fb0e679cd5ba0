"""FI-03 and FI-04: RabbitMQ goes away while publishing and handling go on.

Two faults: the broker stops and starts again (FI-03, `rabbitmqctl stop_app`: marker
`disruptive`, it stops the machine's broker), and the network between Conveyor and the
broker is cut and restored (FI-04, a TCP proxy in the test that resets every connection,
the API's and the worker's alike). Publishers keep calling the HTTP API, each publish
with its own `Idempotency-Key`, and a worker keeps handling the queue. While the broker
is out of reach the API answers 503, never a 2xx; both sides recover by themselves. Every
message the API accepted is handled, and nothing else: a publish that answered 503
although the broker had taken it (the confirm was lost with the connection) is retried
with its key, and both copies carry the id the retry answered.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from conveyor import Context, handler
from conveyor.platform import Platform
from conveyor.queues.model import Queue
from conveyor.worker.handlers import HandlerRegistry
from tests import rabbitmq, services
from tests.conftest import bearer
from tests.tcp_proxy import TcpProxy
from tests.worker.helpers import eventually, running

pytestmark = [
    pytest.mark.rabbitmq,
    pytest.mark.slow,
    pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True),
]

CONCURRENCY = 10
PUBLISHERS = 3


def rabbitmqctl(action: str) -> None:
    command = shutil.which("rabbitmqctl")
    host = urlsplit(rabbitmq.RABBITMQ_URL).hostname
    if command is None or os.geteuid() != 0 or host not in ("127.0.0.1", "localhost"):
        message = "stopping RabbitMQ needs root, rabbitmqctl and the broker on this machine"
        if services.IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run([command, action], check=True, capture_output=True, timeout=60)


@dataclass
class Outage:
    """A queue on the broker, and how to take the broker out of its reach and back."""

    queue: Queue
    down: Callable[[], Awaitable[None]]
    up: Callable[[], Awaitable[None]]


@pytest.fixture(
    params=[
        pytest.param("broker restart", marks=pytest.mark.disruptive),
        pytest.param("connection cut"),
    ]
)
async def outage(request: pytest.FixtureRequest, platform: Platform) -> AsyncIterator[Outage]:
    rabbitmq.require()
    name = rabbitmq.unique_name("outage")
    registration = rabbitmq.registration(name)
    try:
        if request.param == "broker restart":
            rabbitmqctl("status")  # skips (or fails in CI) before anything starts
            yield Outage(
                await platform.queues.create(registration),
                down=lambda: asyncio.to_thread(rabbitmqctl, "stop_app"),
                up=lambda: asyncio.to_thread(rabbitmqctl, "start_app"),
            )
        else:
            async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:

                async def cut() -> None:
                    proxy.cut()

                async def restore() -> None:
                    proxy.restore()

                registration["url"] = f"amqp://127.0.0.1:{proxy.port}/"
                yield Outage(await platform.queues.create(registration), cut, restore)
    finally:
        if request.param == "broker restart":
            rabbitmqctl("start_app")  # whatever happened, the next tests get their broker
        await rabbitmq.delete_queues(name)


@pytest.mark.timeout(180)
async def test_an_outage_answers_503_meanwhile_and_loses_no_accepted_message(
    platform: Platform, client: httpx.AsyncClient, outage: Outage
) -> None:
    queue = outage.queue
    key = await bearer(platform, "publish")
    url = f"/api/v1/zstorage/queue/a/{queue.name}/publish"
    accepted: list[str] = []
    statuses: list[int] = []
    refused: list[str] = []  # idempotency keys of publishes answered 503
    handled: Counter[str] = Counter()
    keys = itertools.count()
    # While the broker is out of reach: a publish that starts then cannot be confirmed.
    out_of_reach = [math.inf, math.inf]
    confirmed_without_broker: list[str] = []

    @handler("count", auto_ack=True)
    async def count(context: Context) -> None:
        handled[context.message.id] += 1

    async def publish(idempotency_key: str | None = None) -> int:
        idempotency_key = idempotency_key or f"k{next(keys)}"
        headers = key | {"Idempotency-Key": idempotency_key}
        started = time.monotonic()
        response = await client.post(url, json={"handler": "count"}, headers=headers)
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200:
            accepted.append(response.json()["message-id"])
            if out_of_reach[0] <= started < out_of_reach[1]:
                confirmed_without_broker.append(idempotency_key)
        else:
            assert response.json()["error"]["code"] == "backend_unavailable", response.text
            refused.append(idempotency_key)
        statuses.append(response.status_code)
        return response.status_code

    stopping = asyncio.Event()

    async def keep_publishing() -> None:
        while not stopping.is_set():  # a publish cut short would be neither kind
            await publish()
            await asyncio.sleep(0.01)

    async def wait_for(status: int, timeout_s: float = 60) -> int:
        """Publish until one answers `status`; the number of publishes before it."""
        deadline = time.monotonic() + timeout_s
        before = len(statuses)
        while await publish() != status:
            assert time.monotonic() < deadline, f"no {status} within {timeout_s} s"
            await asyncio.sleep(0.05)
        return len(statuses) - before

    registry = HandlerRegistry([count])
    async with running(platform, queue, registry, concurrency=CONCURRENCY) as worker:
        # Given publishers and a worker busy on a healthy broker
        busy = [asyncio.create_task(keep_publishing()) for _ in range(PUBLISHERS)]
        await eventually(lambda: len(handled) >= 20, what="messages flowing")

        # When the broker goes out of reach, publishes answer 503, never 2xx
        # (one begun before may still answer 200: its confirm came in time)
        await outage.down()
        out_of_reach[0] = time.monotonic()
        await wait_for(503)
        for _ in range(5):
            assert await publish() == 503

        # Then, once it is back, publishing recovers by itself
        out_of_reach[1] = time.monotonic()
        await outage.up()
        await wait_for(200)
        await asyncio.sleep(1)  # and goes on, with the worker handling
        stopping.set()
        await asyncio.gather(*busy)
        # What was refused, the client sends again with the same key
        retries, refused[:] = refused[:], []
        for idempotency_key in retries:
            assert await publish(idempotency_key) == 200

        # And every accepted message is handled, by a worker that survived the outage
        await eventually(
            lambda: set(accepted) <= set(handled), timeout_s=60, what="every accepted message"
        )
    assert not confirmed_without_broker, "2xx for publishes begun while the broker was away"
    assert len(retries) >= 6
    assert worker.counters.acked >= len(set(accepted))
    unexpected = set(handled) - set(accepted)
    assert not unexpected, f"{len(unexpected)} handled messages were never accepted"
    # Handled twice: a message not yet acked when the broker went away, or one whose
    # refused publish had reached the broker (one per publisher at most).
    again = sum(n - 1 for n in handled.values())
    assert again <= CONCURRENCY + PUBLISHERS, f"{again} messages handled twice"
