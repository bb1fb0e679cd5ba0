"""Checking a message body before anything is stored: a JSON object, not too deep."""

from __future__ import annotations

from typing import Any

import orjson

from conveyor.exceptions import BadRequest, PayloadTooLarge

#: Deepest nesting accepted in a message body.
MAX_DEPTH = 64


def parse_object(body: bytes, *, max_bytes: int, what: str = "message") -> dict[str, Any]:
    """The decoded JSON object in `body`, or BadRequest/PayloadTooLarge saying why."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"the {what} is {len(body)} bytes; this queue accepts {max_bytes}")
    if not body.strip():
        raise BadRequest(f"the {what} is empty; send a JSON object")
    check_depth(body)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the {what} is not valid JSON (UTF-8): {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"the {what} must be a JSON object, not {type(value).__name__}")
    return value


def check_depth(body: bytes) -> None:
    # Counting brackets runs at C speed; only a body with many of them is walked.
    if body.count(b"{") + body.count(b"[") <= MAX_DEPTH:
        return
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > MAX_DEPTH:
                raise BadRequest(f"the JSON nests deeper than {MAX_DEPTH} levels")
        elif byte in (0x7D, 0x5D):  # } ]
            depth -= 1
