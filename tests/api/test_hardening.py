"""Issue 19, API items: a restricted key cannot tell which queues exist (item 9), API
answers are never cached nor sniffed (item 11)."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from conveyor.platform import Platform
from tests.conftest import bearer

PUBLISH = "/api/v1/zstorage/queue"


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "x-request-id")}
    return response.status_code, headers, response.content


async def test_forbidden_and_absent_queues_get_the_same_answer(
    client: httpx.AsyncClient, platform: Platform, admin: dict[str, str]
) -> None:
    await platform.queues.create({"name": "orders", "type": "embedded"})
    hidden = await platform.queues.create({"name": "payments", "type": "embedded"})
    limited = await bearer(platform, "publish", queues=["orders"])
    urls = [f"{PUBLISH}/a/payments/publish", f"{PUBLISH}/{hidden.id}/publish"]
    forbidden = [await client.post(url, headers=limited, json={"a": 1}) for url in urls]
    deleted = await client.delete(f"/api/v1/zstorage/queues/{hidden.id}", headers=admin)
    assert deleted.status_code in (200, 204), deleted.text
    absent = [await client.post(url, headers=limited, json={"a": 1}) for url in urls]
    for one, other in zip(forbidden, absent, strict=True):
        assert one.status_code == 404
        assert _answer(one) == _answer(other)


async def test_api_answers_are_not_cached_nor_sniffed(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/keys", headers=admin, json={"name": "s", "scopes": ["publish"]}
    )
    missing = await client.get("/api/v1/nothing-here", headers=admin)
    for response in (created, missing, await client.get("/health")):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_password_in_the_url_query_is_taken_out_and_encrypted(
    client: httpx.AsyncClient, platform: Platform, admin: dict[str, str]
) -> None:
    spec = {
        "name": "q",
        "type": "rabbitmq",
        "url": "amqp://ana@broker.example:5672/v?password=s3cr%21t&x=1",
    }
    created = await client.post("/api/v1/zstorage/queues", headers=admin, json=spec)
    assert created.status_code == 201, created.text
    assert "s3cr" not in created.text
    assert created.json()["url"] == "amqp://broker.example:5672/v?x=1"
    shown = await client.get(f"/api/v1/zstorage/queues/{created.json()['id']}", headers=admin)
    assert "s3cr" not in shown.text
    queue = await platform.queues.get(created.json()["id"])
    assert (await platform.queues.credentials(queue)).password == "s3cr!t"
    async with platform.db.read() as conn:
        dump = str((await conn.execute(sa.text("SELECT * FROM conveyor_queues"))).all())
    assert "s3cr" not in dump
