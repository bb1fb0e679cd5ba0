"""Liveness and readiness probes: no authentication, no logging noise."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response

from conveyor.api.auth import platform_of
from conveyor.api.responses import Json, error_response

router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 2.0


@router.get("/health", summary="The process is up")
async def health() -> Response:
    return Json({"status": "ok"})


@router.get("/ready", summary="The process can serve: its database answers")
async def ready(request: Request) -> Response:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            ok = await platform_of(request).db.ping()
    except TimeoutError:
        ok = False
    if not ok:
        return error_response(503, "not_ready", "the database does not answer")
    return Json({"status": "ready"})
