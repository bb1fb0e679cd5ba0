"""`Router` declines paths outside its prefix and otherwise routes as FastAPI does."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.routing import Match

from conveyor.api.routing import Router


def app_with(router: Router, *others: Router) -> FastAPI:
    app = FastAPI()
    for r in (router, *others):
        app.include_router(r)
    return app


def make_router(prefix: str, answer: str) -> Router:
    router = Router(prefix=prefix)

    @router.get("/items/{item}")
    async def read(item: str) -> dict[str, str]:
        return {"from": answer, "item": item}

    return router


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        ("/p/items/1", "", Match.FULL),
        ("/q/items/1", "", Match.NONE),
        ("/base/p/items/1", "/base", Match.FULL),  # behind a proxy that adds a root path
        ("/base/q/items/1", "/base", Match.NONE),
    ],
)
def test_the_prefix_decides_before_any_route_is_tried(
    path: str, root_path: str, expected: Match
) -> None:
    router = make_router("/p", "p")
    app = app_with(router)
    scope = {"type": "http", "method": "GET", "path": path, "root_path": root_path}
    included = app.router.routes[-1]
    assert included.matches(scope)[0] == expected


async def test_requests_reach_the_right_router_with_the_usual_statuses() -> None:
    # "/p" is a prefix of "/pq": the router with the shorter prefix must not take its paths.
    app = app_with(make_router("/p", "p"), make_router("/pq", "pq"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/p/items/1")).json() == {"from": "p", "item": "1"}
        assert (await client.get("/pq/items/2")).json() == {"from": "pq", "item": "2"}
        assert (await client.post("/p/items/1")).status_code == 405
        assert (await client.get("/elsewhere/items/1")).status_code == 404
        # Slash redirects still find the route.
        redirect = await client.get("/p/items/1/")
        assert redirect.status_code == 307
        assert redirect.headers["location"].endswith("/p/items/1")


def test_a_path_outside_the_prefix_tries_no_route(monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_with(make_router("/p", "p"))
    tried: list[str] = []

    def recording_matches(self: object, scope: dict[str, str]) -> tuple[Match, dict[str, str]]:
        tried.append(scope["path"])
        return Match.NONE, {}

    monkeypatch.setattr(APIRouter, "matches", recording_matches)
    included = app.router.routes[-1]
    included.matches({"type": "http", "method": "GET", "path": "/q/items/1", "root_path": ""})
    assert tried == []
    included.matches({"type": "http", "method": "GET", "path": "/p/items/1", "root_path": ""})
    assert tried == ["/p/items/1"]
