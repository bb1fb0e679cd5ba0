from __future__ import annotations

import re

import httpx
from asgi_lifespan import LifespanManager

from conveyor.config import Settings
from conveyor.platform import Platform
from conveyor.server import create_app


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_ready_is_503_when_the_database_does_not_answer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        database_url="postgresql://postgres@127.0.0.1:1/none",
        secret_key="k",  # type: ignore[arg-type]
    )
    platform = Platform(settings)
    transport = httpx.ASGITransport(app=create_app(platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "not_ready"
    await platform.db.close()


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/me" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_routes_get_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_an_app_that_owns_its_platform_opens_it_then_says_it_started(
    settings: Settings,
) -> None:
    """`conveyor serve` freezes the start-up heap (`started`) once the platform is open."""
    platform = Platform(settings)
    await platform.migrate()
    seen: list[int] = []  # the platform's background tasks, when `started` ran
    app = create_app(
        platform, owns_platform=True, started=lambda: seen.append(len(platform._tasks))
    )
    async with LifespanManager(app):
        assert len(seen) == 1 and seen[0] > 0
    assert platform._tasks == []  # closed with the app


async def test_the_api_reference_loads_nothing_from_the_internet(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    sources += re.findall(r"url: '([^']+)'", page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in sources and "/openapi.json" in sources
    assert not [s for s in sources if "://" in s], sources
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert len(script.content) > 500_000  # the real bundle, not a stub
    css = await client.get("/docs/assets/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert (await client.get("/docs/assets/nothing.js")).status_code == 404
    redoc = await client.get("/redoc")
    assert redoc.status_code == 200 and "/docs/assets/redoc.standalone.js" in redoc.text
    assert "://" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', redoc.text))
