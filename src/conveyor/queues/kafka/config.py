"""From a registered queue to librdkafka settings and topic names."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from conveyor.queues.model import Credentials, Queue

log = logging.getLogger("conveyor.queues.kafka.librdkafka")

#: A broker that does not confirm a message within this time fails the publish (503).
PUBLISH_TIMEOUT_MS = 10_000
#: Bound on connecting, metadata and admin calls.
REQUEST_TIMEOUT_S = 5.0
#: librdkafka reconnects at most this far apart, so a restarted broker is found quickly.
RECONNECT_BACKOFF_MAX_MS = 1_000


@dataclass(frozen=True)
class KafkaConfig:
    """Everything a backend needs to talk to the cluster, secrets included (never logged)."""

    bootstrap: str
    topic: str
    group: str
    partitions: int
    session_timeout_ms: int
    max_message_bytes: int
    security: dict[str, Any] = field(repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, queue: Queue, credentials: Credentials) -> KafkaConfig:
        options = queue.options
        security: dict[str, Any] = {}
        if credentials.username:
            security = {
                "security.protocol": "SASL_SSL" if options.tls else "SASL_PLAINTEXT",
                "sasl.mechanism": options.sasl_mechanism,
                "sasl.username": credentials.username,
                "sasl.password": credentials.password or "",
            }
        elif options.tls:
            security = {"security.protocol": "SSL"}
        return cls(
            bootstrap=bootstrap_servers(queue.url or ""),
            topic=queue.name,
            group=options.consumer_group or f"conveyor.{queue.name}",
            partitions=options.partitions,
            session_timeout_ms=int(options.session_timeout_s * 1000),
            max_message_bytes=options.max_message_bytes,
            security=security,
            password=credentials.password,
        )

    @property
    def retry_topic(self) -> str:
        return f"{self.topic}.retry"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @property
    def dlq_group(self) -> str:
        """The group whose committed offsets mark dead letters already redriven or deleted."""
        return f"{self.group}.dlq"

    def common(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "client.id": "conveyor",
            "logger": log,
            "socket.connection.setup.timeout.ms": int(REQUEST_TIMEOUT_S * 1000),
            "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
            # Brokers close idle connections; librdkafka reconnects without a fuss.
            "log.connection.close": False,
            **self.security,
        }

    def producer(self) -> dict[str, Any]:
        return {
            **self.common(),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "message.timeout.ms": PUBLISH_TIMEOUT_MS,
            "message.max.bytes": max(1_000_000, self.max_message_bytes + 65_536),
        }

    def consumer(self) -> dict[str, Any]:
        """The workers' group member: offsets committed by Conveyor only."""
        return {
            **self.common(),
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # A new group starts at the oldest message: nothing published before the
            # first worker joined is skipped.
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": max(self.session_timeout_ms // 3, 100),
            "fetch.wait.max.ms": 100,
            # librdkafka's own prefetch, on top of what the ledger holds.
            "queued.max.messages.kbytes": 16_384,
            "allow.auto.create.topics": False,
        }

    def reader(self, group: str) -> dict[str, Any]:
        """A consumer that only ever `assign`s: it reads and commits but never joins `group`."""
        return {
            **self.common(),
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
            "allow.auto.create.topics": False,
        }

    def admin(self) -> dict[str, Any]:
        return self.common()


def bootstrap_servers(url: str) -> str:
    """`kafka://h1:9092, h2:9092` → `h1:9092,h2:9092`."""
    servers = url.strip().removeprefix("kafka://")
    return ",".join(s.strip() for s in servers.split(",") if s.strip())
