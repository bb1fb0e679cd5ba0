"""Liveness and readiness probes: no authentication, no logging noise."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from starlette.responses import Response

from conveyor.api.auth import platform_of
from conveyor.api.responses import Json, error_response

READY_TIMEOUT_S = 2.0


def install(app: FastAPI) -> None:
    """The probes go on the app itself, first: an included router costs a few
    microseconds more per request to match, and load balancers call these often."""
    app.add_api_route("/health", health, summary="The process is up", tags=["health"])
    app.add_api_route(
        "/ready",
        ready,
        summary="The process can serve: its database answers",
        tags=["health"],
    )


async def health() -> Response:
    return Json({"status": "ok"})


async def ready(request: Request) -> Response:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            ok = await platform_of(request).db.ping()
    except TimeoutError:
        ok = False
    if not ok:
        return error_response(503, "not_ready", "the database does not answer")
    return Json({"status": "ready"})
