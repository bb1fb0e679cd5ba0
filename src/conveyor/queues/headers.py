"""Reading the headers any producer may set, defensively.

Queues are shared: other systems publish straight to RabbitMQ, Kafka and SQS, and may
set Conveyor's headers to anything. A value outside its type or range is ignored (the
backend falls back to what the broker says, or to a default) with a warning naming
the message, and never stops a message from reaching its handler, or a dead-letter
listing from showing it. `docs/foreign-producers.md` lists every header and its range.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

log = logging.getLogger("conveyor.queues")

#: Epoch milliseconds Conveyor accepts: from 1970-01-01 to the end of 9999 (what a
#: `datetime` can hold).
MAX_EPOCH_MS = 253_402_300_799_999
#: Longest message id taken from a header: AMQP's `message_id` holds 255 bytes.
MAX_ID_BYTES = 255
#: Bookkeeping numbers are short: at most 19 digits (int64), an optional minus sign.
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def integer(value: object) -> int | None:
    """An integer header value (text, bytes or a number), or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def epoch_ms(value: object, *, header: str, message_id: str) -> int | None:
    """Epoch milliseconds from 1970 to 9999, or None (a warning if the value was there)."""
    if value is None:
        return None
    number = integer(value)
    if number is not None and 0 <= number <= MAX_EPOCH_MS:
        return number
    ignored(header, value, message_id, "not epoch milliseconds between 1970 and 9999")
    return None


def attempt(value: object, max_attempts: int, *, header: str, message_id: str) -> int:
    """An attempt number clamped to [1, `max_attempts`]; 1 when absent or not a number."""
    return bounded(value, 1, max_attempts, header=header, message_id=message_id)


def bounded(value: object, low: int, high: int, *, header: str, message_id: str) -> int:
    """An integer clamped to [low, high]; `low` when absent or not an integer (a warning
    when the value was there but not in range)."""
    if value is None:
        return low
    number = integer(value)
    if number is not None and low <= number <= high:
        return number
    why = "not an integer" if number is None else f"out of range, clamped to [{low}, {high}]"
    ignored(header, value, message_id, why)
    return low if number is None else min(max(number, low), high)


def message_id(value: object) -> str | None:
    """A message id: non-empty text of at most 255 UTF-8 bytes, else None."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or not value:
        return None
    if len(value) > MAX_ID_BYTES // 4 and len(value.encode()) > MAX_ID_BYTES:
        return None
    return value


def ignored(header: str, value: object, message_id: str, why: str) -> None:
    log.warning(
        "ignoring header %s=%s of message %s: %s",
        header,
        escape(str(value)[:40]),
        escape(message_id),
        why,
    )


def escape(text: str) -> str:
    """`text` with every control character escaped (for log lines)."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def from_epoch_ms(ms: int) -> datetime:
    """A UTC datetime; times outside 1970-9999 are clamped into it."""
    return datetime.fromtimestamp(min(max(ms, 0), MAX_EPOCH_MS) / 1000, UTC)
