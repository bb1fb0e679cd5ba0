"""SQS end to end through the HTTP API: register, publish, read back with SQS's own client."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.platform import Platform
from tests.conftest import bearer
from tests.sqs_support import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    drop_queues,
    queue_url,
    raw_client,
    receive_all,
    require_sqs,
    unique_name,
)

pytestmark = [
    pytest.mark.sqs,
    # The registry's database plays no part here: SQLite alone keeps the suite short.
    pytest.mark.parametrize("database", ["sqlite"], indirect=True),
]
QUEUES = "/api/v1/zstorage/queues"


@pytest.fixture
async def sqs_names() -> AsyncIterator[list[str]]:
    """Names of SQS queues a test makes; deleted afterwards."""
    require_sqs()
    names: list[str] = []
    yield names
    async with raw_client() as sqs:
        await drop_queues(sqs, *names)


async def register(
    client: httpx.AsyncClient, admin: dict[str, str], name: str, url: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "name": f"q-{name}".replace(".", "-"),
        "type": "sqs",
        "url": url,
        "username": ACCESS_KEY,
        "password": SECRET_KEY,
        "region": REGION,
        **fields,
    }
    response = await client.post(QUEUES, json=body, headers=admin)
    assert response.status_code == 201, response.text
    queue: dict[str, Any] = response.json()
    assert "password" not in queue and queue["has_password"] is True
    return queue


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_publish_by_id_and_by_name_arrives_in_sqs(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, sqs_names: list[str]
) -> None:
    name = unique_name("api")
    sqs_names.append(name)
    async with raw_client() as sqs:
        url = (await sqs.create_queue(QueueName=name))["QueueUrl"]
        queue = await register(client, admin, name, queue_url(name))
        publisher = await bearer(platform, "publish")
        payloads = [
            {"handler": "orders.created", "n": 1, "text": "héllo ☃", "nul": "a\u0000b"},
            {"handler": "orders.paid", "n": 2, "nested": {"list": [1, 2.5, None, True]}},
        ]
        by_id = await client.post(
            f"/api/v1/zstorage/queue/{queue['id']}/publish", json=payloads[0], headers=publisher
        )
        by_name = await client.post(
            f"/api/v1/zstorage/queue/a/{queue['name']}/publish", json=payloads[1], headers=publisher
        )
        answers = [by_id.json(), by_name.json()]
        assert [by_id.status_code, by_name.status_code] == [200, 200], answers
        messages = {m["MessageId"]: m for m in await receive_all(sqs, url, 2)}
    for answer, payload in zip(answers, payloads, strict=True):
        assert set(answer) == {"message-id", "sqs-id", "backend-message-id", "queue-id"}
        assert answer["queue-id"] == queue["id"]
        assert answer["backend-message-id"] == answer["sqs-id"]
        message = messages[answer["sqs-id"]]  # sqs-id is SQS's own MessageId
        assert json.loads(message["Body"]) == payload
        attributes = message["MessageAttributes"]
        assert attributes["conveyor-message-id"]["StringValue"] == answer["message-id"]
        assert "conveyor-encoding" not in attributes  # plain JSON travels as plain text


async def test_the_batch_endpoint_answers_in_order_with_sqs_ids(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, sqs_names: list[str]
) -> None:
    name = unique_name("api-batch")
    sqs_names.append(name)
    async with raw_client() as sqs:
        url = (await sqs.create_queue(QueueName=name))["QueueUrl"]
        queue = await register(client, admin, name, queue_url(name))
        publisher = await bearer(platform, "publish")
        payloads = [{"handler": "bulk", "n": n} for n in range(100)]
        response = await client.post(
            f"/api/v1/zstorage/queue/a/{queue['name']}/publish-batch",
            json={"messages": payloads},
            headers=publisher,
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        messages = {m["MessageId"]: m for m in await receive_all(sqs, url, 100)}
    assert len(results) == 100 and len(messages) == 100
    for result, payload in zip(results, payloads, strict=True):
        assert json.loads(messages[result["sqs-id"]]["Body"]) == payload


async def test_check_reports_ok_and_a_missing_queue(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, sqs_names: list[str]
) -> None:
    present, absent = unique_name("check-ok"), unique_name("check-missing")
    sqs_names += [present, absent]
    async with raw_client() as sqs:
        await sqs.create_queue(QueueName=present)
    good = await register(client, admin, present, queue_url(present))
    missing = await register(client, admin, absent, queue_url(absent))

    ok = await client.post(f"{QUEUES}/{good['id']}/check", headers=admin)
    assert ok.status_code == 200 and ok.json() == {"ok": True, "error": None}
    stats = await client.get(f"{QUEUES}/{good['id']}/stats", headers=admin)
    assert stats.json() == {"ready": 0, "in_flight": 0, "dead": 0, "delayed": 0}

    answer = (await client.post(f"{QUEUES}/{missing['id']}/check", headers=admin)).json()
    assert answer["ok"] is False
    assert f"SQS queue {absent!r} does not exist" in answer["error"]
    assert "create_if_missing" in answer["error"]
    assert SECRET_KEY not in answer["error"]
    publisher = await bearer(platform, "publish")
    refused = await client.post(
        f"/api/v1/zstorage/queue/{missing['id']}/publish", json={"n": 1}, headers=publisher
    )
    assert refused.status_code == 503
    assert "does not exist" in refused.json()["error"]["message"]
    async with raw_client() as sqs:  # nothing was created behind the user's back
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            await sqs.get_queue_url(QueueName=absent)


async def test_create_if_missing_creates_the_queue(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform, sqs_names: list[str]
) -> None:
    name = unique_name("created")
    sqs_names.append(name)
    queue = await register(
        client, admin, name, queue_url(name), options={"create_if_missing": True}
    )
    check = await client.post(f"{QUEUES}/{queue['id']}/check", headers=admin)
    assert check.json() == {"ok": True, "error": None}
    publisher = await bearer(platform, "publish")
    sent = await client.post(
        f"/api/v1/zstorage/queue/{queue['id']}/publish", json={"n": 1}, headers=publisher
    )
    assert sent.status_code == 200, sent.text
    async with raw_client() as sqs:
        url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
        (message,) = await receive_all(sqs, url, 1)
    assert message["MessageId"] == sent.json()["sqs-id"]


async def test_an_unreachable_endpoint_gives_a_clear_check_and_a_quick_503(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    require_sqs()
    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    queue = await register(client, admin, "nowhere", queue_url("nowhere", endpoint))
    started = time.monotonic()
    answer = (await client.post(f"{QUEUES}/{queue['id']}/check", headers=admin)).json()
    assert answer["ok"] is False
    assert f"cannot reach SQS at {endpoint}" in answer["error"]
    assert SECRET_KEY not in answer["error"]
    publisher = await bearer(platform, "publish")
    refused = await client.post(
        f"/api/v1/zstorage/queue/{queue['id']}/publish", json={"n": 1}, headers=publisher
    )
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "backend_unavailable"
    assert SECRET_KEY not in refused.text
    assert time.monotonic() - started < 20


@pytest.mark.slow
async def test_a_server_that_never_answers_gives_503_not_a_hang(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    require_sqs()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # reads the request, never answers
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        queue = await register(
            client, admin, "silent", queue_url("silent", f"http://127.0.0.1:{port}")
        )
        publisher = await bearer(platform, "publish")
        started = time.monotonic()
        refused = await client.post(
            f"/api/v1/zstorage/queue/{queue['id']}/publish", json={"n": 1}, headers=publisher
        )
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert refused.status_code == 503
    assert "did not answer" in refused.json()["error"]["message"]
    assert elapsed < 30
