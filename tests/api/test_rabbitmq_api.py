"""RabbitMQ queues end to end through the HTTP API, checked with aio-pika directly."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from conveyor.platform import Platform
from tests import rabbitmq
from tests.conftest import bearer
from tests.contract.queue_contract import receive
from tests.tcp_proxy import TcpProxy

# The database plays no part here: SQLite alone keeps the suite short.
pytestmark = [
    pytest.mark.rabbitmq,
    pytest.mark.parametrize("database", ["sqlite"], indirect=True),
]

SECRET = "not-the-password-4711"


@pytest.fixture
async def names() -> AsyncIterator[list[str]]:
    """Queue names to delete from RabbitMQ afterwards."""
    rabbitmq.require()
    created: list[str] = []
    yield created
    for name in created:
        await rabbitmq.delete_queues(name)


async def create_queue(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    names: list[str],
    *,
    url: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    bare, credentials = rabbitmq.split_url()
    name = rabbitmq.unique_name("api")
    names.append(name)
    spec = {
        "name": name,
        "type": "rabbitmq",
        "url": url or bare,
        "username": credentials.username,
        "password": password or credentials.password,
    }
    response = await client.post("/api/v1/zstorage/queues", json=spec, headers=admin)
    assert response.status_code == 201, response.text
    queue: dict[str, Any] = response.json()
    return queue


async def test_published_messages_arrive_in_rabbitmq_with_the_same_json(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, names: list[str]
) -> None:
    queue = await create_queue(client, admin, names)
    key = await bearer(platform, "publish")
    by_id = {"handler": "orders.created", "order": {"id": 1, "total": "12.50"}, "text": "héllo ☃"}
    by_name = {"handler": "orders.created", "order": {"id": 2}, "tags": [1, None, True]}

    first = await client.post(
        f"/api/v1/zstorage/queue/{queue['id']}/publish", json=by_id, headers=key
    )
    second = await client.post(
        f"/api/v1/zstorage/queue/a/{queue['name']}/publish", json=by_name, headers=key
    )

    assert first.status_code == second.status_code == 200, (first.text, second.text)
    answers = [first.json(), second.json()]
    for answer in answers:
        assert answer["queue-id"] == queue["id"]
        assert answer["sqs-id"] == answer["backend-message-id"] == answer["message-id"]
    messages = await rabbitmq.drain(queue["name"])
    assert [orjson.loads(m.body) for m in messages] == [by_id, by_name]
    assert [m.message_id for m in messages] == [a["message-id"] for a in answers]
    for message, answer in zip(messages, answers, strict=True):
        assert message.delivery_mode == 2  # persistent
        assert message.content_type == "application/json"
        assert message.headers["conveyor-message-id"] == answer["message-id"]
        # AMQP's timestamp property: the publish time, in whole seconds.
        published_ms = int(message.headers["conveyor-published-at"])
        assert message.timestamp is not None
        assert abs(message.timestamp.timestamp() * 1000 - published_ms) < 1000


async def test_the_batch_endpoint_publishes_every_message_in_order(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, names: list[str]
) -> None:
    queue = await create_queue(client, admin, names)
    key = await bearer(platform, "publish")
    batch = [{"handler": "h", "n": n} for n in range(50)]

    response = await client.post(
        f"/api/v1/zstorage/queue/a/{queue['name']}/publish-batch",
        json={"messages": batch},
        headers=key,
    )

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    messages = await rabbitmq.drain(queue["name"])
    assert [orjson.loads(m.body) for m in messages] == batch
    assert [m.message_id for m in messages] == [r["message-id"] for r in results]
    assert all(r["sqs-id"] == r["message-id"] for r in results)


async def test_check_says_ok_for_a_good_queue(
    client: httpx.AsyncClient, admin: dict[str, str], names: list[str]
) -> None:
    queue = await create_queue(client, admin, names)
    response = await client.post(f"/api/v1/zstorage/queues/{queue['id']}/check", headers=admin)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "error": None}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_check_explains_a_wrong_port_without_the_password(
    client: httpx.AsyncClient, admin: dict[str, str], names: list[str]
) -> None:
    port = free_port()
    queue = await create_queue(
        client, admin, names, url=f"amqp://127.0.0.1:{port}/", password=SECRET
    )
    started = time.monotonic()
    response = await client.post(f"/api/v1/zstorage/queues/{queue['id']}/check", headers=admin)
    assert time.monotonic() - started < 15
    result = response.json()
    assert result["ok"] is False
    assert f"127.0.0.1:{port}" in result["error"] and "refused" in result["error"].lower()
    assert SECRET not in response.text


async def test_check_explains_a_wrong_password_without_it(
    client: httpx.AsyncClient, admin: dict[str, str], names: list[str]
) -> None:
    queue = await create_queue(client, admin, names, password=SECRET)
    response = await client.post(f"/api/v1/zstorage/queues/{queue['id']}/check", headers=admin)
    result = response.json()
    assert result["ok"] is False
    assert "refused the login" in result["error"] and "password" in result["error"]
    assert SECRET not in response.text


async def test_publishing_to_an_unreachable_broker_answers_503(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, names: list[str]
) -> None:
    queue = await create_queue(client, admin, names, url=f"amqp://127.0.0.1:{free_port()}/")
    key = await bearer(platform, "publish")
    response = await client.post(
        f"/api/v1/zstorage/queue/{queue['id']}/publish", json={"handler": "h"}, headers=key
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "backend_unavailable"


async def test_a_cut_connection_gives_503s_then_recovers_and_loses_no_accepted_message(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, names: list[str]
) -> None:
    key = await bearer(platform, "publish")
    accepted: list[str] = []
    statuses: list[int] = []

    async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:
        queue = await create_queue(client, admin, names, url=f"amqp://127.0.0.1:{proxy.port}/")
        url = f"/api/v1/zstorage/queue/{queue['id']}/publish"

        async def publish(n: int) -> int:
            response = await client.post(url, json={"handler": "h", "n": n}, headers=key)
            if response.status_code == 200:
                accepted.append(response.json()["message-id"])
            else:
                assert SECRET not in response.text
            statuses.append(response.status_code)
            return response.status_code

        async def publish_until(expected: int, timeout_s: float = 30) -> None:
            deadline = time.monotonic() + timeout_s
            while await publish(len(statuses)) != expected:
                assert time.monotonic() < deadline, f"no {expected} within {timeout_s} s"
                await asyncio.sleep(0.1)

        # Given a queue that works, with publishers busy when the connection is cut
        for n in range(10):
            assert await publish(n) == 200
        busy = [asyncio.create_task(_keep_publishing(publish)) for _ in range(3)]
        deadline = time.monotonic() + 30
        while len(statuses) < 20:  # the publishers are under way
            assert time.monotonic() < deadline, "the publishers did not get going"
            await asyncio.sleep(0.01)

        # When the connection is cut, publishes answer 503, never 2xx
        proxy.cut()
        await publish_until(503)
        during = len(statuses)
        for _ in range(10):
            assert await publish(len(statuses)) == 503

        # Then, once it is restored, publishes succeed again by themselves
        proxy.restore()
        await publish_until(200)
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)
        for _ in range(10):
            assert await publish(len(statuses)) == 200

    assert set(statuses) == {200, 503}
    assert statuses.count(503) >= 10 and during < len(statuses)
    in_queue = {m.message_id for m in await rabbitmq.drain(queue["name"])}
    missing = set(accepted) - in_queue
    assert not missing, f"{len(missing)} accepted messages are not in the queue"


async def _keep_publishing(publish: Any) -> None:
    n = 10_000
    while True:
        await publish(n)
        n += 1
        await asyncio.sleep(0.01)


async def test_stats_and_dead_letters_through_the_admin_api(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, names: list[str]
) -> None:
    queue = await create_queue(client, admin, names)
    key = await bearer(platform, "publish")
    base = f"/api/v1/zstorage/queues/{queue['id']}"
    for n in range(3):
        response = await client.post(
            f"/api/v1/zstorage/queue/{queue['id']}/publish", json={"n": n}, headers=key
        )
        assert response.status_code == 200
    assert (await client.get(f"{base}/stats", headers=admin)).json() == {
        "ready": 3,
        "in_flight": None,
        "dead": 0,
        "delayed": 0,
    }
    worker = await platform.backends.connect(await platform.queues.get(queue["id"]))
    for delivery in await receive(worker, 3):
        assert await worker.dead_letter(delivery, reason="no handler 'x'")
    await worker.close()

    letters = (await client.get(f"{base}/dead-letters?limit=2", headers=admin)).json()
    assert len(letters["items"]) == 2 and letters["next_cursor"] == "2"
    assert letters["items"][0]["payload"] == {"n": 0}
    assert letters["items"][0]["last_error"] == "no handler 'x'"
    rest = await client.get(
        f"{base}/dead-letters", params={"cursor": letters["next_cursor"]}, headers=admin
    )
    assert [d["payload"] for d in rest.json()["items"]] == [{"n": 2}]
    picked = {"ids": [letters["items"][1]["id"]]}
    moved = await client.post(f"{base}/dead-letters/redrive", json=picked, headers=admin)
    assert moved.json() == {"count": 1}
    deleted = await client.post(f"{base}/dead-letters/delete", json={"ids": None}, headers=admin)
    assert deleted.status_code == 422  # delete needs ids, or "all": true
    stats = (await client.get(f"{base}/stats", headers=admin)).json()
    assert (stats["ready"], stats["dead"]) == (1, 2)


@pytest.mark.slow
async def test_concurrent_publishes_to_a_silent_broker_all_fail_within_one_timeout(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, names: list[str]
) -> None:
    key = await bearer(platform, "publish")
    async with TcpProxy.to(rabbitmq.RABBITMQ_URL, 5672) as proxy:
        proxy.stall()  # connections are accepted, then nothing comes back
        queue = await create_queue(client, admin, names, url=f"amqp://127.0.0.1:{proxy.port}/")
        url = f"/api/v1/zstorage/queue/{queue['id']}/publish"

        async def publish() -> tuple[int, float]:
            started = time.monotonic()
            response = await client.post(url, json={"handler": "h"}, headers=key)
            return response.status_code, time.monotonic() - started

        answers = await asyncio.gather(*(publish() for _ in range(6)))

    assert [status for status, _ in answers] == [503] * 6
    # One connect timeout (5 s) for all of them, not one after another.
    assert max(seconds for _, seconds in answers) < 9
