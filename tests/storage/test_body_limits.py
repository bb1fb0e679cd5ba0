"""Issue 19, item 4: every record body has a limit, answered 413 before the body is read
past it; a json field has one too; a linked write whose message would exceed its queue's
`max_message_bytes` is refused (422), never published over the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from conveyor.storage.values import MAX_JSON_BYTES

TABLES = "/api/v1/zstorage/tables"
RECORDS = f"{TABLES}/notes/records"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def notes(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    table = {
        "name": "notes",
        "fields": [{"name": "text", "type": "text"}, {"name": "extra", "type": "json"}],
    }
    assert (await client.post(TABLES, headers=admin, json=table)).status_code == 201
    return admin | JSON


async def stored(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    listed = await client.get(f"{RECORDS}?count=true", headers=headers)
    total: int = listed.json()["total"]
    return total


async def test_a_record_over_the_limit_is_refused_before_it_is_read(
    client: httpx.AsyncClient, platform: Platform, notes: dict[str, str]
) -> None:
    limit = platform.settings.max_record_bytes
    body = orjson.dumps({"text": "x" * 2 * limit})
    declared = await client.post(RECORDS, headers=notes, content=body)
    assert declared.status_code == 413, declared.text
    assert declared.json()["error"]["code"] == "payload_too_large"

    read: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        """No Content-Length: the server must stop reading once past the limit."""
        for start in range(0, len(body), 64 * 1024):
            read.append(start)
            yield body[start : start + 64 * 1024]

    chunked = await client.post(RECORDS, headers=notes, content=chunks())
    assert chunked.status_code == 413, chunked.text
    assert len(read) * 64 * 1024 <= limit + 64 * 1024 < len(body)  # it stopped at the limit
    assert await stored(client, notes) == 0


async def test_a_bulk_write_over_its_limit_is_refused(
    client: httpx.AsyncClient, platform: Platform, notes: dict[str, str]
) -> None:
    size = platform.settings.max_bulk_bytes
    body = orjson.dumps([{"text": "x" * 100_000}] * (size // 100_000 + 1))
    response = await client.post(f"{RECORDS}:bulk", headers=notes, content=body)
    assert response.status_code == 413, response.text
    assert await stored(client, notes) == 0


async def test_a_json_field_over_its_limit_is_refused(
    client: httpx.AsyncClient, notes: dict[str, str]
) -> None:
    big = {"text": "t", "extra": {"blob": "x" * MAX_JSON_BYTES}}
    response = await client.post(RECORDS, headers=notes, content=orjson.dumps(big))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "extra"
    assert await stored(client, notes) == 0


async def test_a_linked_write_whose_message_is_too_large_for_its_queue_is_refused(
    client: httpx.AsyncClient, platform: Platform, notes: dict[str, str]
) -> None:
    queue = await platform.queues.create(
        {"name": "small", "type": "embedded", "options": {"max_message_bytes": 2048}}
    )
    await platform.links.put("notes", queue.id, LinkSpec.parse("notes", {}))
    fits = await client.post(RECORDS, headers=notes, content=orjson.dumps({"text": "short"}))
    assert fits.status_code == 201, fits.text
    too_big = orjson.dumps({"text": "x" * 4096})
    refused = await client.post(RECORDS, headers=notes, content=too_big)
    assert refused.status_code == 422, refused.text
    assert "max_message_bytes" in refused.text
    in_bulk = await client.post(f"{RECORDS}:bulk", headers=notes, content=b"[" + too_big + b"]")
    assert in_bulk.status_code == 422, in_bulk.text
    assert await stored(client, notes) == 1
    stats = await (await platform.backends.get(queue)).stats()
    assert stats.ready == 1  # only the message of the write that fits
