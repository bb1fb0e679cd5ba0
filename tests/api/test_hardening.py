"""Issue 19, API items: a restricted key cannot tell which queues exist (item 9), API
answers are never cached nor sniffed (item 11)."""

from __future__ import annotations

import httpx

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
