"""End to end: a record write on a linked table reaches a handler, which writes back
through `context.storage` (itself linked), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx

from conveyor import Context, handler
from conveyor.platform import Platform
from conveyor.worker.handlers import HandlerRegistry
from tests.conftest import bearer
from tests.worker.helpers import eventually, running

TABLES = "/api/v1/zstorage/tables"


async def test_a_linked_write_reaches_a_handler(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    queue = await platform.queues.create({"name": "orders-changed", "type": "embedded"})
    orders = {
        "name": "orders",
        "fields": [{"name": "total", "type": "decimal"}, {"name": "status", "type": "text"}],
        "links": [{"queue": "orders-changed", "events": ["create"], "handler": "order_created"}],
    }
    audit = {
        "name": "audit",
        "fields": [{"name": "order_id", "type": "integer"}, {"name": "note", "type": "text"}],
    }
    assert (await client.post(TABLES, headers=admin, json=orders)).status_code == 201
    assert (await client.post(TABLES, headers=admin, json=audit)).status_code == 201
    seen: list[dict[str, Any]] = []

    @handler("order_created", auto_ack=True)
    async def order_created(context: Context) -> None:
        seen.append(context.message.payload)
        record = context.message.payload["record"]
        await context.storage.create(
            "audit", {"order_id": record["id"], "note": f"total {record['total']}"}
        )

    writer = await bearer(platform, "storage:write")
    created = await client.post(
        f"{TABLES}/orders/records", headers=writer, json={"total": "12.50", "status": "new"}
    )
    assert created.status_code == 201
    async with running(platform, queue, HandlerRegistry([order_created])):

        async def audited() -> bool:
            items = (await platform.storage.records.query("audit", []))[0]
            return len(items) == 1

        await eventually(audited, what="the handler's audit record")
    (message,) = seen
    assert message["event"] == "create" and message["record"] == created.json()
    (row,) = (await platform.storage.records.query("audit", []))[0]
    assert row["order_id"] == created.json()["id"] and row["note"] == "total 12.50"
