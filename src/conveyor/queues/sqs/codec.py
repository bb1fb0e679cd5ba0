"""Messages to and from SQS: body text, message attributes, FIFO ids, sizes.

The message id, publish time and headers travel as message attributes (named as in
`base.py`), so other consumers of the queue see them too. SQS bodies are text from a
restricted character set (no U+0000, no U+FFFE, no lone surrogates): a body outside it
travels base64-encoded, marked by the `conveyor-encoding` attribute, and is decoded on
receipt, so every byte comes back as it was sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.exceptions import BadRequest
from conveyor.queues import base
from conveyor.queues import headers as parse
from conveyor.queues.base import OutgoingMessage

ATTR_ENCODING = "conveyor-encoding"
ATTR_ORDERING_KEY = "conveyor-ordering-key"
#: Headers that cannot be attributes of their own (bad name, too many), as one JSON object.
ATTR_HEADERS = "conveyor-headers"
ATTR_ERROR = "conveyor-error"
ATTR_ATTEMPTS = "conveyor-attempts"
INTERNAL = frozenset(
    {
        ATTR_ENCODING,
        ATTR_ORDERING_KEY,
        ATTR_HEADERS,
        ATTR_ERROR,
        ATTR_ATTEMPTS,
        base.HEADER_MESSAGE_ID,
        base.HEADER_PUBLISHED_AT,
        base.HEADER_ATTEMPT,
    }
)
#: SQS takes at most 10 message attributes; keep room for our own.
MAX_ATTRIBUTES = 10
#: FIFO queues need a group: messages without an ordering key share this one.
DEFAULT_GROUP = "default"
MAX_ERROR_CHARS = 4096
#: What a receive asks SQS to say about each message.
SYSTEM_ATTRIBUTES = ["ApproximateReceiveCount", "SentTimestamp", "MessageGroupId"]

_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(r"^(?!aws\.|amazon\.)(?!.*\.\.)[\w-](?:[\w.-]{0,254}[\w-])?$", re.I)
_FIFO_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

Attributes = dict[str, dict[str, str]]
_RESENT_FIELDS = ("DataType", "StringValue", "BinaryValue")


@dataclass(frozen=True)
class Entry:
    """One message as SQS takes it."""

    message_id: str
    body: str
    attributes: Attributes
    group_id: str | None = None
    deduplication_id: str | None = None

    @property
    def size(self) -> int:
        """Bytes as SQS counts them against its size limit: body plus attributes."""
        total = len(self.body.encode())
        for name, value in self.attributes.items():
            total += len(name) + len(value["DataType"])
            total += len(value.get("StringValue", value.get("BinaryValue", "")).encode())
        return total

    def params(self) -> dict[str, Any]:
        """Arguments of SendMessage, or an entry of SendMessageBatch (without its Id)."""
        params: dict[str, Any] = {"MessageBody": self.body, "MessageAttributes": self.attributes}
        if self.group_id is not None:
            params["MessageGroupId"] = self.group_id
            params["MessageDeduplicationId"] = self.deduplication_id
        return params


def text(value: str) -> str:
    """`value` with the characters SQS refuses replaced (attributes cannot be encoded)."""
    return _NOT_SQS_TEXT.sub("\ufffd", value)


def fifo_id(value: str) -> str:
    """A valid MessageGroupId/MessageDeduplicationId for `value` (a digest if need be)."""
    return value if _FIFO_ID.match(value) else hashlib.sha256(value.encode()).hexdigest()


def encode(message: OutgoingMessage, *, fifo: bool) -> Entry:
    body, encoded = encode_body(message.body)
    attributes: Attributes = {
        base.HEADER_MESSAGE_ID: _string(message.id),
        base.HEADER_PUBLISHED_AT: _number(message.published_at_ms),
    }
    if encoded:
        attributes[ATTR_ENCODING] = _string("base64")
    if message.ordering_key is not None:
        attributes[ATTR_ORDERING_KEY] = _string(text(message.ordering_key) or "-")
    _add_headers(attributes, message.headers)
    if not fifo:
        return Entry(message.id, body, attributes)
    group = fifo_id(message.ordering_key) if message.ordering_key else DEFAULT_GROUP
    return Entry(message.id, body, attributes, group, fifo_id(message.id))


def encode_body(body: bytes) -> tuple[str, bool]:
    """The body as SQS text, and whether it had to be base64-encoded to be one."""
    if not body:
        raise BadRequest("SQS cannot carry an empty message body")
    try:
        decoded = body.decode()
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and not _NOT_SQS_TEXT.search(decoded):
        return decoded, False
    return base64.b64encode(body).decode("ascii"), True


def decode_body(raw: Mapping[str, Any]) -> bytes:
    body = str(raw.get("Body", ""))
    if string_attribute(raw, ATTR_ENCODING) == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error:
            pass  # not ours after all: hand over the text as it is
    return body.encode()


def _add_headers(attributes: Attributes, headers: Mapping[str, str]) -> None:
    fits = len(attributes) + len(headers) <= MAX_ATTRIBUTES
    plain = fits and all(
        _ATTRIBUTE_NAME.match(name) and name not in INTERNAL and value and value == text(value)
        for name, value in headers.items()
    )
    if plain:
        attributes.update({name: _string(value) for name, value in headers.items()})
    elif headers:
        attributes[ATTR_HEADERS] = _string(json.dumps(dict(headers)))  # ASCII: always valid


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _number(value: int) -> dict[str, str]:
    return {"DataType": "Number", "StringValue": str(value)}


def string_attribute(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get("MessageAttributes", {}).get(name)
    if value is None or "StringValue" not in value:
        return None
    return str(value["StringValue"])


def resendable(raw: Mapping[str, Any]) -> Attributes:
    """A received message's attributes as SendMessage takes them again."""
    kept: Attributes = {}
    for name, value in raw.get("MessageAttributes", {}).items():
        if name in (ATTR_ERROR, ATTR_ATTEMPTS):
            continue
        kept[name] = {k: v for k, v in value.items() if k in _RESENT_FIELDS}
    return kept


def headers(raw: Mapping[str, Any]) -> dict[str, str]:
    """A received message's headers: its own attributes, without Conveyor's bookkeeping."""
    found: dict[str, str] = {}
    for name, value in raw.get("MessageAttributes", {}).items():
        if name not in INTERNAL and "StringValue" in value:
            found[name] = str(value["StringValue"])
    packed = string_attribute(raw, ATTR_HEADERS)
    if packed is not None:
        try:
            found.update({str(k): str(v) for k, v in json.loads(packed).items()})
        except (ValueError, AttributeError):
            found[ATTR_HEADERS] = packed
    return found


@dataclass(frozen=True)
class Stamp:
    """What a received message says about itself, whoever sent it."""

    message_id: str
    published_at_ms: int
    receive_count: int
    sent_at_ms: int
    group_id: str | None
    ordering_key: str | None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Stamp:
        system = raw.get("Attributes", {})
        sent_at = parse.integer(system.get("SentTimestamp")) or 0
        message_id = parse.message_id(string_attribute(raw, base.HEADER_MESSAGE_ID))
        message_id = message_id or str(raw["MessageId"])
        published = parse.epoch_ms(
            string_attribute(raw, base.HEADER_PUBLISHED_AT),
            header=base.HEADER_PUBLISHED_AT,
            message_id=message_id,
        )
        return cls(
            message_id=message_id,
            published_at_ms=sent_at if published is None else published,
            # SQS counts the receives itself: its count wins over any header.
            receive_count=max(1, parse.integer(system.get("ApproximateReceiveCount")) or 1),
            sent_at_ms=sent_at,
            group_id=system.get("MessageGroupId"),
            ordering_key=string_attribute(raw, ATTR_ORDERING_KEY),
        )


@dataclass(frozen=True)
class Receipt:
    """What settling a delivery needs: the handle, and the message as SQS holds it."""

    handle: str
    sqs_id: str
    body: str
    attributes: Attributes
    group_id: str | None
    #: `time.monotonic()` at receipt: SQS caps a lease at 12 hours from then.
    received_at: float

    @classmethod
    def of(cls, raw: Mapping[str, Any], received_at: float) -> Receipt:
        return cls(
            handle=str(raw["ReceiptHandle"]),
            sqs_id=str(raw["MessageId"]),
            body=str(raw.get("Body", "")),
            attributes=resendable(raw),
            group_id=raw.get("Attributes", {}).get("MessageGroupId"),
            received_at=received_at,
        )


def with_bookkeeping(attributes: Attributes, extra: Attributes) -> Attributes:
    """`attributes` plus `extra`, folding headers into one attribute if SQS's 10 are too few."""
    merged = {**attributes, **extra}
    if len(merged) <= MAX_ATTRIBUTES:
        return merged
    own = {name: value for name, value in merged.items() if name in INTERNAL}
    folded = headers({"MessageAttributes": merged})
    own[ATTR_HEADERS] = _string(json.dumps(folded))
    return own
