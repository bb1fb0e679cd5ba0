"""The ASGI application: `create_app(platform)`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp

from conveyor import __version__
from conveyor.api import errors, reference
from conveyor.api.lane import Lane
from conveyor.api.middleware import Gateway
from conveyor.api.routes import health, keys, links, pages, publish, queues, storage, workers
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
    (and calls `started` once it is open). Every request passes the gateway (limits, the
    access log), then the express lane of the hot routes, then FastAPI."""
    return Gateway(Lane(create_api(platform, owns_platform=owns_platform, started=started)))


def create_api(
    platform: Platform,
    *,
    owns_platform: bool = False,
    started: Callable[[], None] | None = None,
) -> FastAPI:
    """The FastAPI app: every route, the back-office, the API reference."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not owns_platform:
            yield
            return
        async with platform:
            if started is not None:
                started()
            yield

    app = FastAPI(
        title="Conveyor",
        version=__version__,
        summary="Queues, workers, records and a back-office, behind one authenticated API.",
        lifespan=lifespan,
        # /docs and /redoc are served from the package (`reference.py`).
        docs_url=None,
        redoc_url=None,
    )
    app.state.platform = platform
    reference.install(app)
    errors.install(app)
    health.install(app)
    # Routes are tried in order: publishing, the bulk of the traffic, first; the keys
    # routes (prefix /api/v1, which every API path shares) last.
    app.include_router(publish.router)
    app.include_router(queues.router)
    app.include_router(storage.router)
    app.include_router(links.router)
    app.include_router(pages.router)
    app.include_router(workers.router)
    app.include_router(keys.router)

    @app.get("/admin", include_in_schema=False)
    async def admin_root() -> RedirectResponse:
        return RedirectResponse("/admin/", status_code=307)

    app.mount("/admin", create_web_app(platform))
    return app


def create_app_from_env() -> ASGIApp:
    """The factory `conveyor serve` hands to uvicorn (once per worker process)."""
    return create_app(Platform(Settings.load()), owns_platform=True, started=freeze_start_up)
