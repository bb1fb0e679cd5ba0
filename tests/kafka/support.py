"""The Kafka test broker: where it is, fresh topics, raw clients for checking."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import UTC, datetime
from typing import Any

from confluent_kafka.admin import AdminClient

from conveyor.queues.model import Queue, QueueOptions, QueueType
from tests import services

BOOTSTRAP = os.environ.get("CONVEYOR_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
#: Tansu's group join waits about half the session timeout: keep it short in tests.
FAST_GROUP = {"session_timeout_s": 6}
log = logging.getLogger("tests.kafka")


def require_kafka() -> None:
    services.require("Kafka", BOOTSTRAP, 9092)


def fresh_name(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def kafka_queue(name: str, url: str = BOOTSTRAP, **options: Any) -> Queue:
    now = datetime.now(UTC)
    return Queue(
        id=secrets.token_hex(10),
        name=name,
        type=QueueType.KAFKA,
        url=url,
        username=None,
        has_password=False,
        region=None,
        description=None,
        options=QueueOptions.parse({**FAST_GROUP, **options}),
        created_at=now,
        updated_at=now,
    )


def admin() -> AdminClient:
    return AdminClient({"bootstrap.servers": BOOTSTRAP, "logger": log})


def delete_topics(*names: str) -> None:
    """Best effort: the broker keeps everything in memory."""
    client = admin()
    existing = set(client.list_topics(timeout=5).topics)
    doomed = [
        topic
        for name in names
        for topic in (name, f"{name}.retry", f"{name}.dlq")
        if topic in existing
    ]
    if doomed:
        for future in client.delete_topics(doomed, request_timeout=5).values():
            future.result(10)
