"""The express lane: the hot write routes, called without FastAPI's machinery.

A request to FastAPI passes six layers of middleware, a router that tries routes one by
one, and dependency resolution before its endpoint runs: ~60 µs, more than a durable
write of a message shared by a group commit. The routes that carry the traffic (publish,
publish-batch, record create) take no dependencies: they read what they need from the
request themselves. This lane matches their paths directly and calls those same
endpoint functions; every other request goes on to FastAPI. What a route answers is the
same either way: the endpoints are the same, and errors go through the same table
(`conveyor.api.errors`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.api import errors
from conveyor.api.routes import publish, storage

Endpoint = Callable[[Request, str], Awaitable[Response]]
#: The name of each endpoint's one path parameter, for `Request.path_params`.
_PARAMETER: dict[Endpoint, str] = {storage.create_record: "table"}

_QUEUE = "/api/v1/zstorage/queue/"
_TABLES = "/api/v1/zstorage/tables/"
_BY_ID = {"publish": publish.publish_by_id, "publish-batch": publish.publish_batch_by_id}
_BY_NAME = {"publish": publish.publish_by_name, "publish-batch": publish.publish_batch_by_name}


def route(path: str) -> tuple[Endpoint, str] | None:
    """The endpoint and its one path parameter for a POST to `path`, if the lane has it."""
    if path.startswith(_QUEUE):
        parts = path[len(_QUEUE) :].split("/")
        if len(parts) == 2 and parts[0]:
            endpoint = _BY_ID.get(parts[1])
            return None if endpoint is None else (endpoint, parts[0])
        if len(parts) == 3 and parts[0] == "a" and parts[1]:
            endpoint = _BY_NAME.get(parts[2])
            return None if endpoint is None else (endpoint, parts[1])
        return None
    if path.startswith(_TABLES):
        parts = path[len(_TABLES) :].split("/")
        if len(parts) == 2 and parts[0] and parts[1] == "records":
            return storage.create_record, parts[0]
    return None


class Lane:
    """Runs the lane's routes; hands everything else to `app` (the FastAPI app, which
    `Request.app` names in the lane's requests too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        post = scope["type"] == "http" and scope["method"] == "POST"
        found = route(scope["path"]) if post and not scope.get("root_path") else None
        if found is None:
            await self.app(scope, receive, send)
            return
        endpoint, parameter = found
        scope["app"] = self.app
        scope["path_params"] = {_PARAMETER.get(endpoint, "queue_ref"): parameter}
        request = Request(scope, receive)
        try:
            response = await endpoint(request, parameter)
        except Exception as error:
            response = await errors.respond(request, error)
        await response(scope, receive, send)
