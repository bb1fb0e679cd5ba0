"""The RabbitMQ the tests use, and helpers to make and remove uniquely named queues."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aio_pika

from conveyor.queues.model import Credentials, Queue, QueueOptions, QueueType
from conveyor.queues.rabbitmq.topology import Topology
from tests import services

RABBITMQ_URL = os.environ.get("CONVEYOR_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def require() -> None:
    services.require("RabbitMQ", RABBITMQ_URL, 5672)


def unique_name(prefix: str = "test") -> str:
    return f"conveyor-{prefix}-{secrets.token_hex(5)}"


def split_url(url: str = RABBITMQ_URL) -> tuple[str, Credentials]:
    """The URL without its user and password, and those as credentials."""
    parts = urlsplit(url)
    netloc = parts.hostname or "127.0.0.1"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    credentials = Credentials(
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )
    return urlunsplit(parts._replace(netloc=netloc)), credentials


def registration(name: str) -> dict[str, Any]:
    """What the queue API takes to register RabbitMQ queue `name` on the test broker."""
    url, credentials = split_url()
    return {
        "name": name,
        "type": "rabbitmq",
        "url": url,
        "username": credentials.username,
        "password": credentials.password,
    }


def queue_for(name: str, url: str = RABBITMQ_URL, **options: Any) -> tuple[Queue, Credentials]:
    bare, credentials = split_url(url)
    now = datetime.now(UTC)
    queue = Queue(
        id=secrets.token_hex(10),
        name=name,
        type=QueueType.RABBITMQ,
        url=bare,
        username=credentials.username,
        has_password=credentials.password is not None,
        region=None,
        description=None,
        options=QueueOptions.parse(options),
        created_at=now,
        updated_at=now,
    )
    return queue, credentials


async def delete_queues(name: str) -> None:
    """Remove a queue and every helper Conveyor declared for it."""
    connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue, _ in Topology(name).queues():
            await channel.queue_delete(queue)


async def drain(name: str, *, limit: int = 10_000) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message in a queue, read (and acked) with aio-pika directly."""
    connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(name, ensure=True)
        while len(got) < limit and (message := await queue.get(fail=False, timeout=10)):
            await message.ack()
            got.append(message)
    return got
