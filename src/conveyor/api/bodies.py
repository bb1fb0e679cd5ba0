"""Request bodies read with a limit: refused (413) from Content-Length before a byte is
read, and as soon as a chunked body goes past it, so a body never costs more memory than
its limit."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from conveyor.exceptions import BadRequest, PayloadTooLarge


async def read_body(request: Request, limit: int, *, accepts: str) -> bytes:
    """The body, at most `limit` bytes; `accepts` names who sets the limit in errors
    ("this queue", "a record")."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise BadRequest("invalid Content-Length")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body is {declared} bytes; {accepts} accepts {limit}")
    # Straight from `receive`: Starlette's `stream()` is an async generator, a few µs
    # more per request on the hot routes, for nothing they need.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes; {accepts} accepts {limit}")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
