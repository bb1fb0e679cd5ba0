"""Issue 19 item 10: with CONVEYOR_DENY_PRIVATE_QUEUE_URLS, a queue URL is refused when
it resolves to a private address, however it is written, at registration and at every
connect."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.config import Settings
from conveyor.platform import Platform
from conveyor.queues.model import QueueType
from conveyor.server import create_app
from tests.conftest import bearer

QUEUES = "/api/v1/zstorage/queues"
pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
async def guarded(settings: Settings, platform: Platform) -> AsyncIterator[Platform]:
    """A platform that refuses private addresses, on the same database as `platform`."""
    update = {"deny_private_queue_urls": True, "relay_enabled": False}
    async with Platform(settings.model_copy(update=update)) as guarded:
        yield guarded


@pytest.mark.parametrize(
    ("queue_type", "url"),
    [
        ("rabbitmq", "amqp://127.1:5672/"),
        ("rabbitmq", "amqp://2130706433:5672/"),
        ("rabbitmq", "amqp://localhost.:5672/"),
        ("rabbitmq", "amqp://169.254.169.254:5672/"),
        ("rabbitmq", "amqp://[fd00::1]:5672/"),
        ("rabbitmq", "amqp://[::ffff:10.0.0.1]:5672/"),
        ("rabbitmq", "amqp://[::1]:5672/"),
        ("kafka", "kafka://8.8.8.8:9092,0x7f.1:9092"),
        ("sqs", "http://0177.0.0.1:4566/123456789012/q"),
    ],
)
async def test_private_addresses_are_refused_however_written(
    guarded: Platform, queue_type: str, url: str
) -> None:
    transport = httpx.ASGITransport(app=create_app(guarded))
    async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test") as client:
        spec = {"name": "q", "type": queue_type, "url": url, "region": "us-east-1"}
        response = await client.post(QUEUES, headers=await bearer(guarded, "admin"), json=spec)
    assert response.status_code == 422, response.text
    assert "private address" in response.text


async def test_public_addresses_are_accepted(guarded: Platform) -> None:
    queue = await guarded.queues.create(
        {"name": "q", "type": "rabbitmq", "url": "amqp://93.184.215.14:5672/"}
    )
    assert queue.type is QueueType.RABBITMQ


async def test_the_address_is_checked_again_at_every_connect(
    platform: Platform, guarded: Platform
) -> None:
    # Registered where private addresses were allowed (as a name that resolved to a
    # public address then may resolve to a private one later).
    queue = await platform.queues.create(
        {"name": "inside", "type": "rabbitmq", "url": "amqp://127.0.0.1:5672/"}
    )
    transport = httpx.ASGITransport(app=create_app(guarded))
    async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test") as client:
        response = await client.post(
            f"/api/v1/zstorage/queue/{queue.id}/publish",
            headers=await bearer(guarded, "publish"),
            json={"handler": "x"},
        )
    assert response.status_code == 503, response.text
    assert "127.0.0.1, a private address" in response.json()["error"]["message"]
