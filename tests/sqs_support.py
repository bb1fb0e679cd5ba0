"""The SQS-compatible server of the `sqs` tests, and a raw client to look inside it.

`scripts/services/sqs.sh` starts moto_server and sets CONVEYOR_TEST_SQS_ENDPOINT; point
the variables below at a real account to run the same tests against Amazon SQS.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiobotocore.session import get_session

from conveyor.queues.model import Credentials, Queue, QueueOptions, QueueType
from tests import services

ENDPOINT = os.environ.get("CONVEYOR_TEST_SQS_ENDPOINT", "http://127.0.0.1:5000").rstrip("/")
ACCOUNT = os.environ.get("CONVEYOR_TEST_SQS_ACCOUNT", "123456789012")
REGION = os.environ.get("CONVEYOR_TEST_SQS_REGION", "us-east-1")
ACCESS_KEY = os.environ.get("CONVEYOR_TEST_SQS_ACCESS_KEY", "testing")
SECRET_KEY = os.environ.get("CONVEYOR_TEST_SQS_SECRET_KEY", "testing-secret")
CREDENTIALS = Credentials(ACCESS_KEY, SECRET_KEY)


def require_sqs() -> None:
    services.require("SQS", ENDPOINT, 5000)


def unique_name(prefix: str, *, fifo: bool = False) -> str:
    return f"{prefix}-{secrets.token_hex(5)}" + (".fifo" if fifo else "")


def queue_url(name: str, endpoint: str = ENDPOINT) -> str:
    return f"{endpoint}/{ACCOUNT}/{name}"


def sqs_queue(name: str, *, url: str | None = None, **options: Any) -> Queue:
    """A registered-queue value, as the registry would hand it to the backend."""
    now = datetime.now(UTC)
    return Queue(
        id=secrets.token_hex(10),
        name=name,
        type=QueueType.SQS,
        url=url or queue_url(name),
        username=ACCESS_KEY,
        has_password=True,
        region=REGION,
        description=None,
        options=QueueOptions.parse(options),
        created_at=now,
        updated_at=now,
    )


@asynccontextmanager
async def raw_client(endpoint: str = ENDPOINT, **keys: str) -> AsyncIterator[Any]:
    """SQS's own client (aiobotocore), to check what really is in a queue."""
    async with get_session().create_client(
        "sqs",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=keys.get("access_key", ACCESS_KEY),
        aws_secret_access_key=keys.get("secret_key", SECRET_KEY),
    ) as client:
        yield client


async def drop_queues(client: Any, *names: str) -> None:
    """Delete these queues and their `-dlq` helpers, where they exist."""
    for name in names:
        base, fifo = name.removesuffix(".fifo"), name.endswith(".fifo")
        for candidate in (name, f"{base}-dlq" + (".fifo" if fifo else "")):
            try:
                url = (await client.get_queue_url(QueueName=candidate))["QueueUrl"]
            except client.exceptions.QueueDoesNotExist:
                continue
            await client.delete_queue(QueueUrl=url)


async def receive_all(client: Any, url: str, count: int, *, timeout_s: float = 15) -> list[Any]:
    """`count` messages read with the raw client (deleted as they come), or fewer at timeout."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        response = await client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, count - len(got)),
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        for message in response.get("Messages", []):
            got.append(message)
            await client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return got
