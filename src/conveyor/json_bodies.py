"""JSON request bodies: parsed strictly, bounded in size and depth, and never a long stall.

- `parse_object`: one JSON object (a message, a record), parsed by orjson (strict: UTF-8,
  no NaN, no lone surrogates).
- `parse_items`: the elements of an array, `{"messages": [...]}` or `[...]`, one at a time:
  each element's bytes exactly as sent (a batch stores what its client sent, as a
  single publish does: `99999999999999999999` stays that, duplicate keys stay) and its
  value, with the event loop given a turn between elements, so that a body of many
  megabytes never holds up other requests for longer than one element takes.
- `check_depth`: nesting refused past `MAX_DEPTH`, counted at C speed (the brackets
  outside strings, innermost pairs removed a level at a time).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from conveyor.exceptions import BadRequest, PayloadTooLarge

#: Deepest nesting accepted in a body.
MAX_DEPTH = 64
#: Between two turns of the event loop, elements of about this many bytes are parsed.
YIELD_EVERY_BYTES = 64 * 1024
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_CURLY_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_SPACE = re.compile(r"[ \t\n\r]*")
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: The standard library's scanner, used for where each element ends (orjson, which
#: checks each element, wants a whole document).
_SCANNER = json.JSONDecoder(parse_constant=_refuse_constant)


@dataclass(frozen=True)
class Item:
    """An element of an array body: its bytes as sent, and its value (see `values`)."""

    raw: bytes
    value: Any


def parse_object(
    body: bytes, *, max_bytes: int, what: str = "message", accepts: str = "this queue"
) -> dict[str, Any]:
    """The decoded JSON object in `body`, or BadRequest/PayloadTooLarge saying why;
    `accepts` names who sets `max_bytes`, for the error."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"the {what} is {len(body)} bytes; {accepts} accepts {max_bytes}")
    if not body.strip():
        raise BadRequest(f"the {what} is empty; send a JSON object")
    value = _loads(body, what)
    if not isinstance(value, dict):
        raise BadRequest(f"the {what} must be a JSON object, not {type(value).__name__}")
    return value


async def parse_items(
    body: bytes,
    *,
    key: str | None,
    max_items: int,
    max_item_bytes: int,
    what: str,
    shape: str,
    turns: asyncio.Lock | None = None,
    values: bool = True,
) -> list[Item]:
    """The elements of the array `{key: [...]}` (`key` None: a bare array) in `body`.
    `shape` says what the body should look like, for the error when it does not.
    With `turns`, held for each element, concurrent parses take turns an element at a
    time: another request waits for one element at most, not one of each. Without
    `values`, each element's value is dropped once checked (`Item.value` is None): a
    caller that needs only the bytes keeps no objects alive, which the garbage
    collector would scan again and again while the body is read."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"the {what} is not valid UTF-8") from None
    at = _skip(text, 0)
    if key is not None:
        at = _expect(text, at, "{", shape)
        name, at = _string(text, at, shape)
        if name != key:
            raise BadRequest(shape)
        at = _expect(text, at, ":", shape)
    at = _expect(text, at, "[", shape)
    items: list[Item] = []
    since_turn = 0
    while not items or text.startswith(",", at):
        if items:
            at = _skip(text, at + 1)
        elif text.startswith("]", at):
            break  # empty
        if turns is None:
            item, at = _element(text, at, len(items), max_item_bytes, what, values)
        else:
            async with turns:
                item, at = _element(text, at, len(items), max_item_bytes, what, values)
        items.append(item)
        if len(items) > max_items:
            raise PayloadTooLarge(f"a {what} holds at most {max_items} elements")
        since_turn += len(item.raw)
        if since_turn >= YIELD_EVERY_BYTES:
            since_turn = 0
            await asyncio.sleep(0)
    at = _expect(text, at, "]", shape)
    if key is not None:
        at = _expect(text, at, "}", shape)  # a second key, even the same one, is refused
    if at != len(text):
        raise BadRequest(shape)
    return items


def _element(
    text: str, at: int, index: int, max_bytes: int, what: str, keep: bool
) -> tuple[Item, int]:
    try:
        value, end = _SCANNER.raw_decode(text, at)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"element {index} of the {what} is not valid JSON: {exc}") from None
    raw = text[at:end].encode()
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"element {index} is {len(raw)} bytes; the limit is {max_bytes}")
    if _SURROGATE.search(raw):
        # The standard library takes a lone surrogate (\ud800) that orjson, and every
        # consumer decoding with it, refuses: a pair passes both.
        _loads(raw, f"element {index} of the {what}")
    check_depth(raw)
    return Item(raw, value if keep else None), _skip(text, end)


def _loads(raw: bytes, what: str) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the {what} is not valid JSON (UTF-8): {exc}") from None
    check_depth(raw)
    return value


def _skip(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _expect(text: str, at: int, token: str, shape: str) -> int:
    if not text.startswith(token, at):
        raise BadRequest(shape)
    return _skip(text, at + len(token))


def _string(text: str, at: int, shape: str) -> tuple[str, int]:
    if not text.startswith('"', at):
        raise BadRequest(shape)
    try:
        value, end = json.decoder.scanstring(text, at + 1)  # type: ignore[attr-defined]
    except ValueError:
        raise BadRequest(shape) from None
    return value, _skip(text, end)


def check_depth(raw: bytes) -> None:
    """BadRequest when the valid JSON in `raw` nests deeper than `MAX_DEPTH`."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return
    # Brackets inside strings do not count: drop escaped backslashes, then escaped
    # quotes; what lies between the quotes left is inside strings.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    skeleton = outside.translate(_CURLY_AS_SQUARE, _NOT_BRACKETS)
    # Each pass removes the innermost pairs: one level (replace does not look again at
    # what it joined).
    for _ in range(MAX_DEPTH):
        if not skeleton:
            return
        skeleton = skeleton.replace(b"[]", b"")
    if skeleton:
        raise BadRequest(f"the JSON nests deeper than {MAX_DEPTH} levels")
