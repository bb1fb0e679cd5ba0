"""The API's FastAPI app: `create_api(platform)`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from conveyor.api import errors, reference
from conveyor.api.routes import health, keys, links, pages, publish, queues, storage, workers
from conveyor.platform import Platform
from conveyor.version import __version__

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_api(platform: Platform, *, lifespan: Lifespan | None = None) -> FastAPI:
    """The FastAPI app: every API route and the API reference."""
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
    return app
