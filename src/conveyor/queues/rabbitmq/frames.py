"""Decoding AMQP timestamps that no `datetime` can hold, without losing the connection.

pamqp decodes a `timestamp` (the message property, or a header of type `T`) into a
`datetime` while it reads the frame, and raises on values past the year 9999 or
before year 1. aiormq's frame reader then stops, the connection closes, RabbitMQ
redelivers the message to the next consumer, and that consumer's connection closes
too: one foreign message with `timestamp = 2**63 - 1` stops its queue for everyone.
So such a timestamp decodes to None here (Conveyor then ignores it, as any header out
of range; see `docs/foreign-producers.md`). pamqp is pinned exactly with aiormq.
"""

from __future__ import annotations

from typing import Any

from pamqp import decode

_strict_timestamp = decode.timestamp


def lenient_timestamp(value: bytes) -> tuple[int, Any]:
    """pamqp's `decode.timestamp`, with None for a time out of `datetime`'s range."""
    try:
        return _strict_timestamp(value)
    except (OverflowError, OSError, ValueError):
        if len(value) < 8:
            raise  # a truncated frame stays an error
        return 8, None


def install() -> None:
    """Make pamqp decode out-of-range timestamps as None (idempotent)."""
    decode.METHODS["timestamp"] = lenient_timestamp
    decode.TABLE_MAPPING[b"T"] = lenient_timestamp
    decode.timestamp = lenient_timestamp
