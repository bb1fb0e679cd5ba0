"""The server under test: Conveyor's app plus the baseline routes, on the same stack.

`/bench/minimal-insert` does the durable insert the publish API does (one row in the
embedded queue, committed) with no authentication and no validation: the limit our
route is measured against. `create_plain` is a bare FastAPI app with one route, the
yardstick for our HTTP layer; `/bench/fastapi-route` is that same route on our stack, last
in its router, and `/bench/fastapi-route-first` the same again, first.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import insert
from starlette.types import ASGIApp

from conveyor.config import Settings
from conveyor.db.tables import messages
from conveyor.platform import Platform
from conveyor.queues.base import now_ms
from conveyor.server import create_app


def _fastapi_of(app: Any) -> FastAPI:
    """The FastAPI app inside the layers that wrap it (the gateway, the express lane)."""
    while not isinstance(app, FastAPI):
        app = app.app
    return app


def create() -> ASGIApp:
    platform = Platform(Settings.load())
    served = create_app(platform, owns_platform=True)
    app = _fastapi_of(served)

    @app.post("/bench/minimal-insert/{queue_id}")
    async def minimal_insert(request: Request, queue_id: str) -> dict[str, str]:
        body = await request.body()
        now = now_ms()
        message_id = str(uuid.uuid4())
        async with platform.db.write() as conn:
            result = await conn.execute(
                insert(messages)
                .values(
                    queue_id=queue_id,
                    message_id=message_id,
                    payload=body.decode(),
                    state="ready",
                    attempt=0,
                    published_at=now,
                    visible_at=now,
                )
                .returning(messages.c.id)
            )
            row_id = result.scalar_one()
        return {"message-id": message_id, "sqs-id": str(row_id), "queue-id": queue_id}

    async def fastapi_route() -> dict[str, str]:
        """The plain app's route, served by our stack."""
        return {"status": "ok"}

    # Last, behind all our routes; and first, where only our middleware is in its way.
    app.add_api_route("/bench/fastapi-route", fastapi_route)
    app.add_api_route("/bench/fastapi-route-first", fastapi_route)
    app.router.routes.insert(0, app.router.routes.pop())
    return served


def create_plain() -> FastAPI:
    """A bare FastAPI app with one route: the yardstick for our HTTP layer."""
    plain = FastAPI()

    @plain.get("/health")
    async def hello() -> dict[str, str]:
        return {"status": "ok"}

    return plain
