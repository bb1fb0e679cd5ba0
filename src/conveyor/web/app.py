"""The back-office ASGI app, mounted under `/admin` by `conveyor.server.create_app`."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from conveyor.platform import Platform
from conveyor.web import errors
from conveyor.web.headers import SecurityHeaders
from conveyor.web.templating import STATIC_DIR, environment
from conveyor.web.views import (
    dead_letters,
    designer,
    fields,
    home,
    keys,
    login,
    outbox,
    page_designer,
    queues,
    records,
    table_pages,
    tables,
    workers,
)

#: Every page module, in navigation order. A module has a `router` and a `NAV` entry
#: (or None when it adds no menu item).
VIEWS = (
    home,
    queues,
    dead_letters,
    tables,
    designer,
    fields,
    records,
    page_designer,
    table_pages,
    workers,
    outbox,
    keys,
    login,
)


def create_web_app(platform: Platform) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.platform = platform
    app.state.templates = environment()
    app.state.nav = [view.NAV for view in VIEWS if view.NAV is not None]
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for view in VIEWS:
        app.include_router(view.router)
    errors.install(app)
    app.add_middleware(SecurityHeaders)
    return app
