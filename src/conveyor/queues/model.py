"""What a queue is: its type, address, credentials and options."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Row

from conveyor.exceptions import ValidationError, field_error

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
NAME_RULE = "1-128 letters, digits, '_', '.' or '-', starting with a letter or digit"
SQS_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,75}(\.fifo|[A-Za-z0-9_-]{0,5})$")
SQS_NAME_RULE = "1-80 letters, digits, '-' or '_' (ending in '.fifo' for a FIFO queue)"


class QueueType(StrEnum):
    #: A table in Conveyor's own database: nothing else to run.
    EMBEDDED = "embedded"
    RABBITMQ = "rabbitmq"
    KAFKA = "kafka"
    SQS = "sqs"


class QueueOptions(BaseModel):
    """Per-queue behaviour. Unknown options are refused, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: How long a received message stays invisible to other consumers.
    visibility_timeout_s: float = Field(default=30, gt=0, le=12 * 3600)
    #: Deliveries before a message is dead-lettered.
    max_attempts: int = Field(default=5, ge=1, le=1000)
    #: Base of the exponential retry backoff (with jitter).
    retry_backoff_s: float = Field(default=1, ge=0, le=3600)
    retry_backoff_max_s: float = Field(default=300, ge=0, le=12 * 3600)
    #: Largest accepted message body, in bytes.
    max_message_bytes: int = Field(default=262_144, ge=1, le=16 * 1024 * 1024)
    #: Keep messages that exhausted their attempts (False: drop them).
    dead_letter: bool = True
    #: Create the broker's queue/topic when missing (Kafka, SQS).
    create_if_missing: bool = False
    #: Kafka: the consumer group of the queue's workers (default `conveyor.<queue name>`).
    consumer_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    #: Kafka: partitions of the topics Conveyor creates.
    partitions: int = Field(default=3, ge=1, le=10_000)
    #: Kafka: a worker silent this long leaves the group and its partitions move on.
    session_timeout_s: float = Field(default=10, ge=6, le=1800)
    #: Kafka: the SASL mechanism used when the queue has a username.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    #: Kafka: connect with TLS.
    tls: bool = False

    @classmethod
    def parse(cls, values: dict[str, Any] | None) -> QueueOptions:
        try:
            return cls.model_validate(values or {})
        except PydanticValidationError as exc:
            details = [
                {"field": ".".join(["options", *map(str, e["loc"])]), "message": e["msg"]}
                for e in exc.errors()
            ]
            summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
            raise ValidationError(summary, details=details) from None


_COMMON = frozenset(
    {
        "visibility_timeout_s",
        "max_attempts",
        "retry_backoff_s",
        "retry_backoff_max_s",
        "max_message_bytes",
        "dead_letter",
    }
)
_KAFKA = frozenset({"consumer_group", "partitions", "session_timeout_s", "sasl_mechanism", "tls"})
#: The options each type of queue uses; the others are not stored, shown or accepted.
OWN_OPTIONS: dict[QueueType, frozenset[str]] = {
    QueueType.EMBEDDED: _COMMON,
    QueueType.RABBITMQ: _COMMON,
    QueueType.KAFKA: _COMMON | {"create_if_missing"} | _KAFKA,
    QueueType.SQS: _COMMON | {"create_if_missing"},
}


def own_options(queue_type: QueueType, options: QueueOptions) -> dict[str, Any]:
    """The options of this type of queue, as the API shows them."""
    own = OWN_OPTIONS[queue_type]
    return {k: v for k, v in options.model_dump().items() if k in own}


def foreign_options(
    queue_type: QueueType, options: QueueOptions, given: set[str]
) -> list[tuple[str, str]]:
    """Problems with options given for another type of queue. A foreign option at its
    default passes (forms send every option), and is then not kept."""
    problems = []
    for name in sorted(given - OWN_OPTIONS[queue_type]):
        field = QueueOptions.model_fields.get(name)
        if field is not None and getattr(options, name) != field.default:
            users = [t.value for t, own in OWN_OPTIONS.items() if name in own]
            problems.append((f"options.{name}", f"applies to {' and '.join(users)} queues only"))
    return problems


@dataclass(frozen=True)
class Queue:
    id: str
    name: str
    type: QueueType
    url: str | None
    username: str | None
    has_password: bool
    region: str | None
    description: str | None
    options: QueueOptions
    created_at: datetime
    updated_at: datetime
    #: When a message was last published through Conveyor (recorded a few seconds late).
    last_published_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Queue:
        return cls(
            id=row.id,
            name=row.name,
            type=QueueType(row.type),
            url=row.url,
            username=row.username,
            has_password=row.password_encrypted is not None,
            region=row.region,
            description=row.description,
            options=QueueOptions.model_validate(row.options),
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_published_at=row.last_published_at,
        )


@dataclass(frozen=True)
class Credentials:
    """What a backend needs to connect; only built when connecting."""

    username: str | None
    password: str | None


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise field_error("name", f"invalid queue name: use {NAME_RULE}")
    return name


_SCHEMES: dict[QueueType, frozenset[str]] = {
    QueueType.RABBITMQ: frozenset({"amqp", "amqps"}),
    QueueType.SQS: frozenset({"http", "https"}),
}


def check_url(queue_type: QueueType, url: str | None, *, deny_private: bool = False) -> str | None:
    """The URL normalised for its queue type, or a 422 naming `url`."""
    url = (url or "").strip() or None
    if queue_type is QueueType.EMBEDDED:
        if url is not None:
            raise field_error("url", "embedded queues live in Conveyor's database: leave url empty")
        return None
    if url is None:
        raise field_error("url", f"a {queue_type.value} queue needs a url")
    if len(url) > 2048 or any(c.isspace() or ord(c) < 32 for c in url):
        raise field_error("url", "the url is too long or contains spaces/control characters")
    hosts = _kafka_hosts(url) if queue_type is QueueType.KAFKA else [_url_host(queue_type, url)]
    if deny_private:
        for host in hosts:
            _refuse_private(host)
    return url


def url_hosts(queue_type: QueueType, url: str) -> list[str]:
    """The host names (or addresses) a checked URL connects to."""
    if queue_type is QueueType.EMBEDDED:
        return []
    return _kafka_hosts(url) if queue_type is QueueType.KAFKA else [_url_host(queue_type, url)]


def _url_host(queue_type: QueueType, url: str) -> str:
    parts = urlsplit(url)
    allowed = _SCHEMES[queue_type]
    if parts.scheme not in allowed:
        schemes = " or ".join(f"{s}://" for s in sorted(allowed))
        raise field_error("url", f"a {queue_type.value} url starts with {schemes}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise field_error("url", "the url has an invalid port") from None
    if not parts.hostname:
        raise field_error("url", "the url has no host")
    if queue_type is QueueType.SQS:
        segments = parts.path.strip("/").split("/")
        if len(segments) != 2:
            raise field_error("url", "an SQS url ends with /<account>/<queue-name>")
        if not SQS_NAME_RE.match(segments[1]):
            raise field_error("url", f"the SQS queue name in the url must be {SQS_NAME_RULE}")
    return parts.hostname


def _kafka_hosts(url: str) -> list[str]:
    servers = url.removeprefix("kafka://")
    hosts = []
    for server in servers.split(","):
        # Credentials in the URL (`kafka://user:pass@host:port`) are no part of the host.
        host, sep, port = server.strip().rpartition("@")[2].rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise field_error("url", "Kafka bootstrap servers look like host:port[,host:port]")
        hosts.append(host.strip("[]"))
    return hosts


_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})


def _refuse_private(host: str) -> None:
    if host.lower() in _METADATA_HOSTS or host.lower() == "localhost":
        raise field_error("url", f"{host} is not allowed here (private addresses are refused)")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
        raise field_error("url", f"{host} is not allowed here (private addresses are refused)")
