"""The HTTP server's app: the API and the back-office (`/admin`) over one platform.

Every request passes the gateway (limits, the access log), then the express lane of the
hot routes, then the API's FastAPI app, which mounts the back-office under `/admin`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp

from conveyor.api import create_api
from conveyor.api.lane import Lane
from conveyor.api.middleware import Gateway
from conveyor.config import Settings
from conveyor.heap import freeze_start_up
from conveyor.platform import Platform
from conveyor.web import create_web_app


def create_app(
    platform: Platform,
    *,
    owns_platform: bool = False,
    started: Callable[[], None] | None = None,
) -> ASGIApp:
    """The HTTP app over `platform`; with `owns_platform`, its lifespan opens and closes it
    (and calls `started` once it is open)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not owns_platform:
            yield
            return
        async with platform:
            if started is not None:
                started()
            yield

    api = create_api(platform, lifespan=lifespan)

    @api.get("/admin", include_in_schema=False)
    async def admin_root() -> RedirectResponse:
        return RedirectResponse("/admin/", status_code=307)

    api.mount("/admin", create_web_app(platform))
    return Gateway(Lane(api))


def create_app_from_env() -> ASGIApp:
    """The factory `conveyor serve` hands to uvicorn (once per worker process)."""
    return create_app(Platform(Settings.load()), owns_platform=True, started=freeze_start_up)
