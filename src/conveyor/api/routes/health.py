"""Liveness and readiness probes: no authentication, no logging noise.

Load balancers and orchestrators call these every few seconds on every process, so
they are plain Starlette routes placed first in the router: no dependency solving, no
response model, and no other route's pattern tried before them. (FastAPI's OpenAPI
schema lists only its own routes; the probes are documented in the README.)
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.api.auth import platform_of
from conveyor.api.responses import Json, error_response

READY_TIMEOUT_S = 2.0


def install(app: FastAPI) -> None:
    app.router.routes[:0] = [
        Route("/health", health, methods=["GET"], include_in_schema=False),
        Route("/ready", ready, methods=["GET"], include_in_schema=False),
    ]


async def health(_: Request) -> Response:
    """The process is up."""
    return Json({"status": "ok"})


async def ready(request: Request) -> Response:
    """The process can serve: its database answers."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            ok = await platform_of(request).db.ping()
    except TimeoutError:
        ok = False
    if not ok:
        return error_response(503, "not_ready", "the database does not answer")
    return Json({"status": "ready"})
