"""Request bodies read with a limit: refused (413) from Content-Length before a byte is
read, and as soon as a chunked body goes past it, so a body never costs more memory than
its limit."""

from __future__ import annotations

from starlette.requests import Request

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
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes; {accepts} accepts {limit}")
        chunks.append(chunk)
    return b"".join(chunks)
