"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request)."""

from __future__ import annotations

import logging
import time
from itertools import chain
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api.responses import error_response

access_log = logging.getLogger("conveyor.access")

#: Query parameters that would put a credential into logs and browser history.
_CREDENTIAL_PARAMS = frozenset({"api_key", "apikey", "access_token", "token"})


#: Total size of the request headers accepted (the server's own parser stops at 80 KiB).
MAX_HEADER_BYTES = 16 * 1024
BACK_OFFICE = "/admin"
_API_HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]


class Gateway:
    """Every request passes here first (one middleware, not two: each layer costs a
    call per request). It refuses, before any routing, oversized headers (431) and API
    keys in the URL (400), marks API answers `no-store` and `nosniff` (they carry keys
    and data; the back-office sets its own headers), and logs one line per request:
    method, path (never the query string), status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _refusal(scope)
        app = self.app if refusal is None else refusal
        api = not scope["path"].startswith(BACK_OFFICE)
        logged = access_log.isEnabledFor(logging.INFO)
        if not (api or logged):
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        # One wrapper for both jobs: each layer around `send` costs a call per message.
        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if api:
                    message = _with_api_headers(message)
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            if logged:
                ms = (time.perf_counter() - started) * 1000
                access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, ms)


def _with_api_headers(start: Message) -> Message:
    headers = list(start.get("headers", ()))
    names = [name.lower() for name, _ in headers]
    headers += [pair for pair in _API_HEADERS if pair[0] not in names]
    return {**start, "headers": headers}


def _refusal(scope: Scope) -> ASGIApp | None:
    headers = scope["headers"]
    # Names and values, plus ": " and CRLF per header.
    size = sum(map(len, chain.from_iterable(headers))) + 4 * len(headers)
    if size > MAX_HEADER_BYTES:
        return error_response(
            431, "headers_too_large", f"the request headers exceed {MAX_HEADER_BYTES} bytes"
        )
    if scope.get("query_string") and _has_key(scope):
        return error_response(
            400,
            "api_key_in_query",
            "send API keys in the Authorization header, never in the URL; "
            "revoke this key, since the URL may have been logged by a proxy",
        )
    return None


def _has_key(scope: Scope) -> bool:
    raw: bytes = scope["query_string"]
    if b"cvk_" in raw:
        return True
    return any(
        name.lower() in _CREDENTIAL_PARAMS
        for name, _ in parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    )
