"""Kafka queues through the HTTP API, against a real broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from conveyor.platform import Platform
from tests.conftest import bearer
from tests.kafka.support import (
    AUTH_BOOTSTRAP,
    BOOTSTRAP,
    FAST_GROUP,
    delete_topics,
    free_port,
    fresh_name,
    read_back,
    require_auth_kafka,
    require_kafka,
)

# Kafka's behaviour does not depend on Conveyor's database: SQLite is enough here.
pytestmark = [pytest.mark.kafka, pytest.mark.parametrize("database", ["sqlite"], indirect=True)]
QUEUES = "/api/v1/zstorage/queues"


@pytest.fixture
async def topics(platform: Platform) -> AsyncIterator[list[str]]:
    """Names of the topics a test creates, deleted afterwards, once the platform's
    clients have let go of them (see `delete_topics`)."""
    require_kafka()
    names: list[str] = []
    yield names
    await platform.backends.close()
    delete_topics(*names)


async def create_queue(
    client: httpx.AsyncClient, admin: dict[str, str], name: str, **fields: Any
) -> dict[str, Any]:
    spec = {"name": name, "type": "kafka", "url": f"kafka://{BOOTSTRAP}", **fields}
    spec["options"] = {**FAST_GROUP, **spec.get("options", {})}
    response = await client.post(QUEUES, json=spec, headers=admin)
    assert response.status_code == 201, response.text
    queue: dict[str, Any] = response.json()
    return queue


async def test_publish_by_id_and_by_name_lands_in_the_topic(
    client: httpx.AsyncClient, platform: Platform, admin: dict[str, str], topics: list[str]
) -> None:
    name = fresh_name("orders")
    topics.append(name)
    queue = await create_queue(client, admin, name, options={"create_if_missing": True})
    publisher = await bearer(platform, "publish")
    sent = [{"handler": "ship", "order": 1, "note": "héllo ☃"}, {"handler": "ship", "order": 2}]
    answers = [
        await client.post(
            f"/api/v1/zstorage/queue/{queue['id']}/publish", json=sent[0], headers=publisher
        ),
        await client.post(
            f"/api/v1/zstorage/queue/a/{name}/publish", json=sent[1], headers=publisher
        ),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["queue-id"] == queue["id"]
        partition, offset = body["sqs-id"].split(":")
        assert partition.isdigit() and offset.isdigit()
        assert body["backend-message-id"] == body["sqs-id"]

    records = read_back(name, [a.json()["sqs-id"] for a in answers])
    for record, answer, payload in zip(records, answers, sent, strict=True):
        assert orjson.loads(record.value()) == payload
        headers = dict(record.headers())
        assert headers["conveyor-message-id"].decode() == answer.json()["message-id"]
        assert f"{record.partition()}:{record.offset()}" == answer.json()["sqs-id"]


async def test_publish_batch_lands_in_order(
    client: httpx.AsyncClient, platform: Platform, admin: dict[str, str], topics: list[str]
) -> None:
    name = fresh_name("batch")
    topics.append(name)
    queue = await create_queue(
        client, admin, name, options={"create_if_missing": True, "partitions": 1}
    )
    publisher = await bearer(platform, "publish")
    sent = [{"handler": "ship", "order": n} for n in range(5)]
    answer = await client.post(
        f"/api/v1/zstorage/queue/{queue['id']}/publish-batch",
        json={"messages": sent},
        headers=publisher,
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    positions = [r["sqs-id"] for r in results]
    assert positions == [f"0:{int(positions[0].split(':')[1]) + n}" for n in range(5)]
    records = read_back(name, positions)
    assert [orjson.loads(r.value()) for r in records] == sent


async def test_check_is_ok_for_a_good_queue_and_names_a_missing_topic(
    client: httpx.AsyncClient, platform: Platform, admin: dict[str, str], topics: list[str]
) -> None:
    good, missing = fresh_name("good"), fresh_name("missing")
    topics += [good, missing]
    queue = await create_queue(client, admin, good, options={"create_if_missing": True})
    check = await client.post(f"{QUEUES}/{queue['id']}/check", headers=admin)
    assert check.json() == {"ok": True, "error": None}

    queue = await create_queue(client, admin, missing)
    check = (await client.post(f"{QUEUES}/{queue['id']}/check", headers=admin)).json()
    assert check["ok"] is False
    assert f"topic {missing!r} does not exist" in check["error"]
    assert "create_if_missing" in check["error"]
    publisher = await bearer(platform, "publish")
    answer = await client.post(
        f"/api/v1/zstorage/queue/a/{missing}/publish", json={"handler": "x"}, headers=publisher
    )
    assert answer.status_code == 503
    assert "does not exist" in answer.json()["error"]["message"]


async def test_a_wrong_port_fails_fast_with_503_and_a_clear_check(
    client: httpx.AsyncClient, platform: Platform, admin: dict[str, str]
) -> None:
    port = free_port()
    queue = await create_queue(client, admin, fresh_name("nowhere"), url=f"127.0.0.1:{port}")
    check = (await client.post(f"{QUEUES}/{queue['id']}/check", headers=admin)).json()
    assert check["ok"] is False
    assert f"cannot reach the Kafka cluster at 127.0.0.1:{port}" in check["error"]
    publisher = await bearer(platform, "publish")
    started = time.monotonic()
    answer = await client.post(
        f"/api/v1/zstorage/queue/{queue['id']}/publish", json={"handler": "x"}, headers=publisher
    )
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "backend_unavailable"
    assert time.monotonic() - started < 20  # bounded: never a hang


async def test_a_refused_login_is_reported_without_the_password(
    client: httpx.AsyncClient, platform: Platform, admin: dict[str, str]
) -> None:
    require_auth_kafka()
    password = "pw-Very-Secret-4711"
    queue = await create_queue(
        client,
        admin,
        fresh_name("locked"),
        url=AUTH_BOOTSTRAP,
        username="conveyor",
        password=password,
        options={"sasl_mechanism": "SCRAM-SHA-512"},
    )
    assert queue["has_password"] is True and "password" not in queue
    check = (await client.post(f"{QUEUES}/{queue['id']}/check", headers=admin)).json()
    assert check["ok"] is False
    assert "authentication failed" in check["error"]
    publisher = await bearer(platform, "publish")
    answer = await client.post(
        f"/api/v1/zstorage/queue/{queue['id']}/publish", json={"handler": "x"}, headers=publisher
    )
    assert answer.status_code == 503
    for text in (str(check), answer.text):
        assert password not in text
