"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request)."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api.responses import error_response

access_log = logging.getLogger("conveyor.access")

#: Query parameters that would put a credential into logs and browser history.
_CREDENTIAL_PARAMS = frozenset({"api_key", "apikey", "access_token", "token"})


#: Total size of the request headers accepted (the server's own parser stops at 80 KiB).
MAX_HEADER_BYTES = 16 * 1024


class RequestGuard:
    """Refuses, before any routing: oversized headers (431) and API keys in the URL (400)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > MAX_HEADER_BYTES:
                await error_response(
                    431,
                    "headers_too_large",
                    f"the request headers exceed {MAX_HEADER_BYTES} bytes",
                )(scope, receive, send)
                return
            if scope.get("query_string") and _has_key(scope):
                await error_response(
                    400,
                    "api_key_in_query",
                    "send API keys in the Authorization header, never in the URL; "
                    "revoke this key, since the URL may have been logged by a proxy",
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _has_key(scope: Scope) -> bool:
    raw: bytes = scope["query_string"]
    if b"cvk_" in raw:
        return True
    return any(
        name.lower() in _CREDENTIAL_PARAMS
        for name, _ in parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    )


class AccessLog:
    """One line per request: method, path (never the query string), status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed_ms)
