"""Kafka records as Conveyor reads and writes them: the value is the JSON body, the rest
travels in headers so that any Kafka client sees the same message."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from conveyor.queues import base
from conveyor.queues import headers as parse

#: Deliveries made before this record was written (a retry carries its count on).
HEADER_DELIVERIES = "conveyor-deliveries"
#: Epoch milliseconds before which the record is not handed out (retries with a delay).
HEADER_NOT_BEFORE = "conveyor-not-before"
HEADER_LAST_ERROR = "conveyor-last-error"
HEADER_DEAD_AT = "conveyor-dead-at"
#: Where a dead letter died: `topic:partition:offset`.
HEADER_ORIGIN = "conveyor-origin"
#: A marker in the dead-letter topic: the letter with this id was redriven or deleted.
HEADER_REMOVES = "conveyor-removes"

#: Bookkeeping headers that handlers do not see.
_INTERNAL = frozenset({HEADER_DELIVERIES, HEADER_NOT_BEFORE, HEADER_REMOVES})

Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record, detached from librdkafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Mapping[str, str]
    timestamp_ms: int

    @classmethod
    def of(cls, message: Any) -> Record:
        headers = {
            name: (raw or b"").decode("utf-8", "replace") for name, raw in message.headers() or ()
        }
        _, timestamp = message.timestamp()
        return cls(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            value=message.value() or b"",
            headers=headers,
            timestamp_ms=timestamp if 0 < timestamp <= parse.MAX_EPOCH_MS else base.now_ms(),
        )

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @cached_property
    def message_id(self) -> str:
        """Conveyor's id; a record written by another producer gets its position."""
        given = parse.message_id(self.headers.get(base.HEADER_MESSAGE_ID))
        return given or f"{self.topic}:{self.position}"

    def deliveries(self, most: int) -> int:
        """Deliveries before this copy was written, clamped to [0, `most`]."""
        return parse.bounded(
            self.headers.get(HEADER_DELIVERIES),
            0,
            most,
            header=HEADER_DELIVERIES,
            message_id=self.message_id,
        )

    @cached_property
    def not_before_ms(self) -> int:
        value = self.headers.get(HEADER_NOT_BEFORE)
        found = parse.epoch_ms(value, header=HEADER_NOT_BEFORE, message_id=self.message_id)
        return found or 0

    @cached_property
    def published_at_ms(self) -> int:
        value = self.headers.get(base.HEADER_PUBLISHED_AT)
        found = parse.epoch_ms(value, header=base.HEADER_PUBLISHED_AT, message_id=self.message_id)
        return self.timestamp_ms if found is None else found

    @property
    def ordering_key(self) -> str | None:
        return self.key.decode("utf-8", "replace") if self.key is not None else None

    def visible_headers(self, attempt: int) -> dict[str, str]:
        headers = {k: v for k, v in self.headers.items() if k not in _INTERNAL}
        headers[base.HEADER_MESSAGE_ID] = self.message_id
        headers[base.HEADER_ATTEMPT] = str(attempt)
        headers[base.HEADER_PUBLISHED_AT] = str(self.published_at_ms)
        return headers

    def carried_headers(
        self, extra: Mapping[str, object], *, drop: Collection[str] = ()
    ) -> Headers:
        """This record's headers for a copy of it (retry, dead letter, redrive)."""
        headers: Headers = [
            (k, v.encode()) for k, v in self.headers.items() if k not in extra and k not in drop
        ]
        headers.append((base.HEADER_MESSAGE_ID, self.message_id.encode()))
        headers.append((base.HEADER_PUBLISHED_AT, str(self.published_at_ms).encode()))
        headers += [(k, str(v).encode()) for k, v in extra.items()]
        return _unique(headers)


def outgoing_headers(message: base.OutgoingMessage) -> Headers:
    headers: Headers = [(k, v.encode()) for k, v in message.headers.items()]
    headers.append((base.HEADER_MESSAGE_ID, message.id.encode()))
    headers.append((base.HEADER_PUBLISHED_AT, str(message.published_at_ms).encode()))
    return _unique(headers)


def _unique(headers: Headers) -> Headers:
    """The last value of each header name wins."""
    return list(dict(headers).items())
