"""Table → queue links through the HTTP API, on SQLite and PostgreSQL (embedded queue)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from conveyor.queues.model import Queue
from tests.conftest import bearer
from tests.contract.queue_contract import receive

TABLES = "/api/v1/zstorage/tables"
RECORDS = f"{TABLES}/estudante/records"
ESTUDANTE: dict[str, Any] = {
    "name": "estudante",
    "fields": [
        {"name": "nome", "type": "text", "required": True},
        {"name": "idade", "type": "integer", "min": 0},
    ],
    "rules": [
        {"name": "adult", "expression": "record.idade >= 18", "message": "must be 18 or older"}
    ],
}


@pytest.fixture
async def queue(platform: Platform) -> Queue:
    return await platform.queues.create({"name": "estudantes", "type": "embedded"})


@pytest.fixture
async def writer(platform: Platform) -> dict[str, str]:
    return await bearer(platform, "storage:write")


@pytest.fixture
async def table(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    assert (await client.post(TABLES, headers=admin, json=ESTUDANTE)).status_code == 201


async def messages_in(platform: Platform, queue: Queue, count: int) -> list[dict[str, Any]]:
    backend = await platform.backends.connect(queue)
    deliveries = await receive(backend, count)
    assert await backend.receive(10, wait_s=0.3) == [], "more messages than expected"
    for delivery in deliveries:
        await backend.ack(delivery)
    return [orjson.loads(d.body) | {"_id": d.id, "_key": d.ordering_key} for d in deliveries]


@pytest.mark.usefixtures("table")
async def test_every_write_of_a_linked_table_publishes_its_message(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    writer: dict[str, str],
    platform: Platform,
    queue: Queue,
) -> None:
    put = await client.put(
        f"{TABLES}/estudante/links/estudantes",
        headers=admin,
        json={"events": ["create", "update", "delete"], "handler": "estudante_changed"},
    )
    assert put.status_code == 201, put.text
    assert put.json()["queue"]["id"] == queue.id and put.json()["mode"] == "outbox"

    created = (await client.post(RECORDS, headers=writer, json={"nome": "Ana", "idade": 20})).json()
    refused = await client.post(RECORDS, headers=writer, json={"nome": "Bia", "idade": 15})
    assert refused.status_code == 422
    record_id = created["id"]
    updated = await client.patch(f"{RECORDS}/{record_id}", headers=writer, json={"idade": 21})
    assert updated.status_code == 200
    assert (await client.delete(f"{RECORDS}/{record_id}", headers=writer)).status_code == 204

    create, update, delete = await messages_in(platform, queue, 3)
    assert create["event"] == "create" and create["handler"] == "estudante_changed"
    assert create["table"] == "estudante" and create["record"] == created
    assert "previous" not in create and "occurred_at" in create
    assert update["record"] == updated.json() and update["previous"] == created
    assert update["changed"] == ["idade"]
    assert delete["event"] == "delete" and delete["previous"] == updated.json()
    assert {m["_key"] for m in (create, update, delete)} == {f"estudante:{record_id}"}

    outbox = (await client.get("/api/v1/zstorage/outbox", headers=admin)).json()
    assert outbox["counts"] == {"pending": 0, "sent": 3, "failed": 0}
    assert [row["event"] for row in outbox["items"]] == ["delete", "update", "create"]
    assert {row["message_id"] for row in outbox["items"]} == {
        m["_id"] for m in (create, update, delete)
    }
    # Times in ISO 8601 (UTC), as everywhere else in the API.
    row = outbox["items"][0]
    for key in ("created_at", "next_attempt_at", "sent_at"):
        assert datetime.fromisoformat(row[key]).utcoffset() == timedelta(0), row[key]
    assert row["sent_at"] >= row["created_at"]


@pytest.mark.usefixtures("table")
async def test_links_are_listed_replaced_and_removed(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    writer: dict[str, str],
    platform: Platform,
    queue: Queue,
) -> None:
    url = f"{TABLES}/estudante/links/{queue.id}"
    assert (await client.put(url, headers=admin, json={})).status_code == 201
    replaced = await client.put(url, headers=admin, json={"events": ["delete"], "handler": "gone"})
    assert replaced.status_code == 200 and replaced.json()["events"] == ["delete"]
    listed = (await client.get(f"{TABLES}/estudante/links", headers=admin)).json()["items"]
    assert [(link["queue"]["name"], link["handler"]) for link in listed] == [("estudantes", "gone")]
    await client.post(RECORDS, headers=writer, json={"nome": "Ana", "idade": 20})
    assert (await (await platform.backends.connect(queue)).stats()).ready == 0
    assert (await client.delete(url, headers=admin)).status_code == 200
    assert (await client.get(f"{TABLES}/estudante/links", headers=admin)).json()["items"] == []
    assert (await client.delete(url, headers=admin)).status_code == 404


async def test_links_can_be_given_with_the_table(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    writer: dict[str, str],
    platform: Platform,
    queue: Queue,
) -> None:
    spec = ESTUDANTE | {"links": [{"queue": "estudantes", "events": ["create"], "handler": "h"}]}
    created = await client.post(TABLES, headers=admin, json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["links"] == [
        {"queue": queue.id, "events": ["create"], "handler": "h", "mode": "outbox"}
    ]
    await client.post(RECORDS, headers=writer, json={"nome": "Ana", "idade": 20})
    (message,) = await messages_in(platform, queue, 1)
    assert message["handler"] == "h"
    cleared = await client.patch(f"{TABLES}/estudante", headers=admin, json={"links": []})
    assert cleared.status_code == 200 and cleared.json()["links"] == []
    bad = await client.post(
        TABLES,
        headers=admin,
        json=ESTUDANTE
        | {"name": "other", "links": [{"queue": "nope"}, {"queue": "estudantes", "mode": "x"}]},
    )
    assert bad.status_code == 422
    assert {d["field"] for d in bad.json()["error"]["details"]} == {
        "links[0].queue",
        "links[1].mode",
    }
    assert (await client.get(f"{TABLES}/other", headers=admin)).status_code == 404


@pytest.mark.usefixtures("table")
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": []}, "events"),
        ({"events": ["insert"]}, "events"),
        ({"mode": "eventually"}, "mode"),
        ({"handler": "has space"}, "handler"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_links_are_422_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, str], queue: Queue, body: dict[str, Any], field: str
) -> None:
    response = await client.put(f"{TABLES}/estudante/links/{queue.name}", headers=admin, json=body)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


async def test_links_to_missing_tables_or_queues_are_404(
    client: httpx.AsyncClient, admin: dict[str, str], queue: Queue, platform: Platform
) -> None:
    assert (
        await client.put(f"{TABLES}/nope/links/{queue.id}", headers=admin, json={})
    ).status_code == 404
    await client.post(TABLES, headers=admin, json=ESTUDANTE)
    assert (
        await client.put(f"{TABLES}/estudante/links/nope", headers=admin, json={})
    ).status_code == 404
    publisher = await bearer(platform, "publish", "storage:write")
    assert (
        await client.put(f"{TABLES}/estudante/links/{queue.id}", headers=publisher, json={})
    ).status_code == 403


@pytest.mark.usefixtures("table")
async def test_replay_re_emits_the_matching_records(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    writer: dict[str, str],
    platform: Platform,
    queue: Queue,
) -> None:
    for n in range(10):
        await client.post(RECORDS, headers=writer, json={"nome": f"p{n}", "idade": 18 + n})
    await client.put(
        f"{TABLES}/estudante/links/estudantes", headers=admin, json={"events": ["create"]}
    )
    replayed = await client.post(
        f"{TABLES}/estudante/links/estudantes/replay?idade[gte]=24&rate_per_s=1000", headers=admin
    )
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["enqueued"] == 4 and replayed.json()["next_cursor"] is None
    messages = await messages_in(platform, queue, 4)
    assert sorted(m["record"]["idade"] for m in messages) == [24, 25, 26, 27]
    assert {m["event"] for m in messages} == {"replay"}
    bad = await client.post(
        f"{TABLES}/estudante/links/estudantes/replay?bogus[zz]=1", headers=admin
    )
    assert bad.status_code in (400, 422)
    limited = await client.post(
        f"{TABLES}/estudante/links/estudantes/replay?max_records=3&rate_per_s=1000", headers=admin
    )
    assert limited.json()["enqueued"] == 3 and limited.json()["next_cursor"]


async def test_outbox_listing_filters_and_retry(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    assert (
        await client.get("/api/v1/zstorage/outbox?status=lost", headers=admin)
    ).status_code == 422
    assert (await client.get("/api/v1/zstorage/outbox?cursor=x", headers=admin)).status_code == 400
    assert (
        await client.post("/api/v1/zstorage/outbox/999/retry", headers=admin)
    ).status_code == 404
    empty = (await client.get("/api/v1/zstorage/outbox?status=failed", headers=admin)).json()
    assert empty == {
        "items": [],
        "next_cursor": None,
        "counts": {"pending": 0, "sent": 0, "failed": 0},
        "sent_capped": False,
    }


@pytest.mark.usefixtures("table")
async def test_a_link_made_by_another_process_applies_to_the_next_write(
    platform: Platform, queue: Queue
) -> None:
    """Each process caches a table's links for the table's version; changing a link
    bumps the version, so another process sees it on its very next write."""
    other = Platform(platform.settings)
    try:
        await platform.storage.records.create("estudante", {"nome": "before", "idade": 30})
        await other.links.put(
            "estudante", queue.id, LinkSpec.parse("estudante", {"events": ["create"]})
        )
        await platform.storage.records.create("estudante", {"nome": "after", "idade": 30})
        (message,) = await messages_in(platform, queue, 1)
        assert message["record"]["nome"] == "after"
        await other.links.delete("estudante", queue.id)
        await platform.storage.records.create("estudante", {"nome": "unlinked", "idade": 30})
        assert (await (await platform.backends.connect(queue)).stats()).ready == 0
    finally:
        await other.close()


@pytest.mark.usefixtures("table")
async def test_a_sync_link_to_a_broker_that_is_down_fails_the_write_and_stores_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], writer: dict[str, str], platform: Platform
) -> None:
    await platform.queues.create({"name": "down", "type": "rabbitmq", "url": "amqp://127.0.0.1:1/"})
    put = await client.put(f"{TABLES}/estudante/links/down", headers=admin, json={"mode": "sync"})
    assert put.status_code == 201
    response = await client.post(RECORDS, headers=writer, json={"nome": "Ana", "idade": 20})
    assert response.status_code == 503, response.text
    assert "rolled back" in response.json()["error"]["message"]
    listed = await client.get(f"{RECORDS}?count=true", headers=writer)
    assert listed.json()["total"] == 0
    assert (await platform.outbox.counts()) == {"pending": 0, "sent": 0, "failed": 0}
