"""How a Conveyor message travels in RabbitMQ: AMQP properties and headers.

The message id is the AMQP `message_id` (and the `conveyor-message-id` header); the
publish time and the attempt travel in headers. Messages are persistent JSON. The
functions build AMQP properties directly (not `aio_pika.Message`): this is the publish
hot path. `conveyor-attempt` on the wire is the
number the *next* delivery of that copy will carry: 1 when published, 2 after one retry.
A broker copy is never changed: Conveyor re-publishes a new copy (same id, new headers)
and acks the old one.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from aio_pika.abc import AbstractIncomingMessage
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from conveyor.queues import base
from conveyor.queues import headers as parse
from conveyor.queues.base import OutgoingMessage

HEADER_LAST_ERROR = "conveyor-last-error"
HEADER_DEAD_AT = "conveyor-dead-at"
HEADER_DEAD_LETTER_ID = "conveyor-dead-letter-id"
HEADER_ORDERING_KEY = "conveyor-ordering-key"
CONTENT_TYPE = "application/json"
PERSISTENT = 2
Properties: TypeAlias = Basic.Properties
#: Errors are kept for people to read; a full traceback is cut to this many characters.
MAX_ERROR_CHARS = 4000
#: Names of the headers dropped from a copy so that it fits in one frame (see `fit`).
HEADER_DROPPED = "conveyor-dropped-headers"
#: RabbitMQ's default frame size; the backend passes the one it negotiated.
FRAME_MAX = 131_072
#: The frame's own header and end, and room to spare.
_FRAME_OVERHEAD = 64
MAX_DROPPED_CHARS = 1000
#: A last error cut this short when even that is needed to fit.
SHORT_ERROR_CHARS = 500
#: Headers a copy never drops.
_KEPT = frozenset(
    {base.HEADER_MESSAGE_ID, base.HEADER_ATTEMPT, base.HEADER_PUBLISHED_AT, HEADER_DROPPED}
)
#: The attempt of a message read without its queue's options (dead-letter listings).
MAX_ATTEMPTS = 1000
#: Headers the broker manages; a re-published copy starts without them.
_BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-")

log = logging.getLogger(__name__)


def outgoing(message: OutgoingMessage) -> Properties:
    headers: dict[str, Any] = dict(message.headers)
    headers[base.HEADER_MESSAGE_ID] = message.id
    headers[base.HEADER_ATTEMPT] = "1"
    headers[base.HEADER_PUBLISHED_AT] = str(message.published_at_ms)
    if message.ordering_key is not None:
        headers[HEADER_ORDERING_KEY] = message.ordering_key
    return Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=PERSISTENT,
        headers=headers,
        message_id=message.id,
        # AMQP's own publish time (whole seconds), for tools that read it.
        timestamp=parse.from_epoch_ms(message.published_at_ms),
    )


@dataclass(frozen=True)
class Stamp:
    """What Conveyor reads from a delivered message."""

    id: str
    attempt: int
    published_at_ms: int
    #: Text-valued headers, as handlers see them.
    headers: dict[str, str]
    ordering_key: str | None

    @classmethod
    def of(cls, message: AbstractIncomingMessage, *, max_attempts: int = MAX_ATTEMPTS) -> Stamp:
        """Read defensively: a header out of its range is ignored (see `headers.py`); the
        attempt is clamped to [1, `max_attempts`]."""
        raw = message.headers or {}
        headers = {k: t for k, v in raw.items() if (t := _text(v)) is not None}
        message_id = (
            parse.message_id(headers.get(base.HEADER_MESSAGE_ID))
            or parse.message_id(message.message_id)
            # A foreign message without an id: one derived from its content.
            or str(uuid.UUID(bytes=hashlib.sha256(message.body).digest()[:16]))
        )
        published = parse.epoch_ms(
            headers.get(base.HEADER_PUBLISHED_AT),
            header=base.HEADER_PUBLISHED_AT,
            message_id=message_id,
        )
        if published is None:
            stamp = message.timestamp  # None when out of range (see `frames.py`)
            published = max(0, int(stamp.timestamp() * 1000)) if stamp else base.now_ms()
        attempt = parse.attempt(
            headers.get(base.HEADER_ATTEMPT),
            max_attempts,
            header=base.HEADER_ATTEMPT,
            message_id=message_id,
        )
        return cls(
            id=message_id,
            attempt=attempt,
            published_at_ms=published,
            headers=headers,
            ordering_key=headers.get(HEADER_ORDERING_KEY),
        )

    def visible_headers(self) -> dict[str, str]:
        """The headers a handler sees: Conveyor's fields as this delivery has them."""
        return self.headers | {
            base.HEADER_MESSAGE_ID: self.id,
            base.HEADER_ATTEMPT: str(self.attempt),
            base.HEADER_PUBLISHED_AT: str(self.published_at_ms),
        }


def copy(
    message: AbstractIncomingMessage,
    stamp: Stamp,
    *,
    attempt: int,
    set_headers: Mapping[str, str] | None = None,
    drop_headers: tuple[str, ...] = (),
    expiration_ms: int | None = None,
    frame_max: int = FRAME_MAX,
) -> Properties:
    """Properties for a new broker copy of `message`: same id and properties, new headers,
    made to fit in one frame of `frame_max` bytes (see `fit`)."""
    headers = {
        k: v
        for k, v in (message.headers or {}).items()
        if not k.startswith(_BROKER_HEADERS) and k not in drop_headers
    }
    headers[base.HEADER_MESSAGE_ID] = stamp.id
    headers[base.HEADER_ATTEMPT] = str(attempt)
    headers[base.HEADER_PUBLISHED_AT] = str(stamp.published_at_ms)
    for key, value in (set_headers or {}).items():
        headers[key] = value[:MAX_ERROR_CHARS]
    properties = Properties(
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=headers,
        delivery_mode=PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        expiration=str(expiration_ms) if expiration_ms is not None else None,
        message_id=stamp.id,
        message_type=message.type,
        app_id=message.app_id,
        timestamp=message.timestamp or parse.from_epoch_ms(stamp.published_at_ms),
    )
    return fit(properties, frame_max, message_id=stamp.id)


def header_bytes(properties: Properties) -> int:
    """The size of the content-header frame that carries `properties`."""
    return len(ContentHeader(0, 0, properties).marshal())


def fits(properties: Properties, frame_max: int) -> bool:
    # A cheap bound first: only headers near the limit are encoded to be measured.
    rough = sum(len(k) + _rough_len(v) for k, v in (properties.headers or {}).items())
    return rough * 2 < frame_max or header_bytes(properties) <= frame_max - _FRAME_OVERHEAD


def fit(properties: Properties, frame_max: int, *, message_id: str) -> Properties:
    """`properties` shrunk to fit in one frame: AMQP cannot split a content header, and
    RabbitMQ closes the whole connection (every delivery on it) over one too large.

    Foreign headers go first, the largest first, their names kept in
    `conveyor-dropped-headers`; then the last error is cut short; then any header but
    Conveyor's id, attempt and publish time."""
    if fits(properties, frame_max):
        return properties
    headers = dict(properties.headers or {})
    dropped: list[str] = []

    def shrink(candidates: list[str]) -> bool:
        for name in sorted(candidates, key=lambda k: _rough_len(headers[k]), reverse=True):
            del headers[name]
            dropped.append(name)
            headers[HEADER_DROPPED] = ",".join(dropped)[:MAX_DROPPED_CHARS]
            properties.headers = headers
            if fits(properties, frame_max):
                return True
        return False

    foreign = [k for k in headers if not k.startswith("conveyor-")]
    if not shrink(foreign):
        error = headers.get(HEADER_LAST_ERROR)
        if isinstance(error, str):
            headers[HEADER_LAST_ERROR] = error[:SHORT_ERROR_CHARS]
            properties.headers = headers
        if not fits(properties, frame_max):
            shrink([k for k in headers if k not in _KEPT])
    log.warning(
        "message %s: headers dropped to fit RabbitMQ's frame size (%d bytes): %s",
        parse.escape(message_id),
        frame_max,
        parse.escape(",".join(dropped)[:200]) or "none (the last error was cut short)",
    )
    return properties


def _rough_len(value: Any) -> int:
    return (
        len(value)
        if isinstance(value, str | bytes)
        else 16
        if not isinstance(value, dict | list)
        else 4096
    )


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool | int | float):
        return str(value)
    return None
