"""Records: partial updates, rules over `previous`, references, bulk, hooks, cursors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.platform import Platform
from conveyor.storage import Event, Record, TableDef

TABLES = "/api/v1/zstorage/tables"


@pytest.fixture
async def orders(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    customers = {
        "name": "customer",
        "fields": [
            {"name": "name", "type": "text", "required": True},
            {"name": "email", "type": "email", "unique": True},
        ],
    }
    orders = {
        "name": "orders",
        "fields": [
            {"name": "customer", "type": "reference", "table": "customer"},
            {"name": "total", "type": "decimal", "scale": 2, "min": 0, "indexed": True},
            {"name": "status", "type": "select", "choices": ["new", "paid", "sent"]},
        ],
        "rules": [
            {
                "name": "forward",
                "expression": "previous == null || previous.status != 'sent' "
                "|| record.status == 'sent'",
                "message": "a sent order stays sent",
            }
        ],
    }
    for table in (customers, orders):
        assert (await client.post(TABLES, headers=admin, json=table)).status_code == 201


async def post(client: httpx.AsyncClient, admin: dict[str, str], table: str, **body: Any) -> Any:
    return await client.post(f"{TABLES}/{table}/records", headers=admin, json=body)


async def test_patch_is_partial_and_rules_see_previous(
    orders: None, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    order = (await post(client, admin, "orders", total="10.5", status="new")).json()
    url = f"{TABLES}/orders/records/{order['id']}"
    paid = await client.patch(url, headers=admin, json={"status": "sent"})
    assert paid.status_code == 200
    body = paid.json()
    assert body["total"] == "10.50" and body["status"] == "sent"
    assert body["updated_at"] >= order["updated_at"] and body["created_at"] == order["created_at"]
    back = await client.patch(url, headers=admin, json={"status": "new"})
    assert back.status_code == 422
    assert back.json()["error"]["details"][0]["rule"] == "forward"
    assert (await client.patch(url, headers=admin, json={"id": 5})).status_code == 422
    assert (await client.patch(url, headers=admin, json={"total": "-1"})).status_code == 422
    assert (await client.get(url, headers=admin)).json() == body
    missing = await client.patch(f"{TABLES}/orders/records/999", headers=admin, json={})
    assert missing.status_code == 404


async def test_references_are_enforced(
    orders: None, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    customer = (await post(client, admin, "customer", name="Ana")).json()
    nowhere = await post(client, admin, "orders", customer=999)
    assert nowhere.status_code == 422
    assert nowhere.json()["error"]["details"][0]["field"] == "customer"
    order = await post(client, admin, "orders", customer=customer["id"])
    assert order.status_code == 201
    url = f"{TABLES}/customer/records/{customer['id']}"
    blocked = await client.delete(url, headers=admin)
    assert blocked.status_code == 409
    assert (await client.get(url, headers=admin)).status_code == 200
    referenced = await client.delete(f"{TABLES}/customer?force=true", headers=admin)
    assert (
        referenced.status_code == 409 and "orders.customer" in referenced.json()["error"]["message"]
    )
    by_customer = await client.get(
        f"{TABLES}/orders/records", headers=admin, params={"customer": str(customer["id"])}
    )
    assert [r["id"] for r in by_customer.json()["items"]] == [order.json()["id"]]


async def test_a_thousand_records_on_a_wide_table_come_back_in_order(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # 1,000 rows of 60 fields: SQLite's multi-row INSERTs are cut under its 32,766
    # bound parameters, and the answer keeps the order given.
    fields = [{"name": f"f{n}", "type": "integer"} for n in range(60)]
    spec = {"name": "wide", "fields": [{"name": "label", "type": "text"}, *fields]}
    assert (await client.post(TABLES, headers=admin, json=spec)).status_code == 201
    rows = [{"label": f"r{i}"} | {f"f{n}": i * n for n in range(60)} for i in range(1000)]
    created = await client.post(f"{TABLES}/wide/records:bulk", headers=admin, json=rows)
    assert created.status_code == 201, created.text
    items = created.json()["items"]
    assert [{k: item[k] for k in rows[0]} for item in items] == rows
    ids = [item["id"] for item in items]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    again = await client.get(f"{TABLES}/wide/records/{ids[777]}", headers=admin)
    assert again.json()["label"] == "r777" and again.json()["f59"] == 777 * 59


async def test_bulk_is_all_or_nothing_with_errors_per_index(
    orders: None, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    url = f"{TABLES}/customer/records:bulk"
    good = [{"name": f"c{i}", "email": f"c{i}@x.io"} for i in range(5)]
    created = await client.post(url, headers=admin, json={"records": good})
    assert created.status_code == 201
    assert [r["name"] for r in created.json()["items"]] == [g["name"] for g in good]
    invalid = [{"name": "ok"}, {"email": "bad"}, {"name": "x", "nope": 1}]
    refused = await client.post(url, headers=admin, json=invalid)
    assert refused.status_code == 422
    indexes = sorted({d["index"] for d in refused.json()["error"]["details"]})
    assert indexes == [1, 2]
    duplicates = [
        {"name": "a", "email": "c1@x.io"},
        {"name": "b", "email": "n@x.io"},
        {"name": "c", "email": "n@x.io"},
    ]
    conflict = await client.post(url, headers=admin, json=duplicates)
    assert conflict.status_code == 409
    assert [(d["index"], d["field"]) for d in conflict.json()["error"]["details"]] == [
        (0, "email"),
        (2, "email"),
    ]
    listed = await client.get(f"{TABLES}/customer/records?count=true", headers=admin)
    assert listed.json()["total"] == 5
    too_many = await client.post(url, headers=admin, json=[{"name": "x"}] * 1001)
    assert too_many.status_code == 413
    assert (await client.post(url, headers=admin, json=[])).status_code == 422


async def test_hooks_run_inside_the_write_transaction(
    orders: None, platform: Platform, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    seen: list[tuple[str, Record | None, Record | None]] = []

    async def hook(
        conn: AsyncConnection,
        table: TableDef,
        event: Event,
        record: Record | None,
        previous: Record | None,
    ) -> None:
        assert conn.in_transaction()
        seen.append((event, record, previous))
        if record is not None and record.get("name") == "boom":
            raise RuntimeError("the outbox is down")

    platform.storage.records.hooks.append(hook)
    records = platform.storage.records
    ana = await records.create("customer", {"name": "Ana"})
    updated = await records.update("customer", ana["id"], {"name": "Bia"})
    await records.delete("customer", ana["id"])
    assert seen == [("create", ana, None), ("update", updated, ana), ("delete", None, updated)]
    with pytest.raises(RuntimeError):
        await records.create("customer", {"name": "boom"})
    listed = await client.get(f"{TABLES}/customer/records", headers=admin)
    assert listed.json()["items"] == []

    # A caller's transaction: the record and the caller's own write commit together.
    async with platform.db.write() as conn:
        joined = await records.create("customer", {"name": "Cy"}, conn=conn)
        await conn.execute(sa.text("SELECT 1"))
    assert (await records.get("customer", joined["id"]))["name"] == "Cy"


async def test_cursors_are_stable_under_concurrent_inserts(
    orders: None, platform: Platform
) -> None:
    records = platform.storage.records
    await records.create_many(
        "orders", [{"total": f"{i}.00", "status": "new"} for i in range(0, 40, 2)]
    )
    params = [("sort", "-total"), ("limit", "3")]
    seen: list[str] = []
    items, cursor, _ = await records.query("orders", params)
    seen += [r["total"] for r in items]
    odd = 39
    while cursor is not None:
        # Rows sorting before and after the cursor arrive between pages.
        await asyncio.gather(
            records.create("orders", {"total": f"{odd}.00"}),
            records.create("orders", {"total": "1000.00"}),
        )
        odd -= 2
        items, cursor, _ = await records.query("orders", [*params, ("cursor", cursor)])
        seen += [r["total"] for r in items]
    originals = [f"{i}.00" for i in range(38, -1, -2)]
    assert [t for t in seen if t in originals] == originals  # each once, in order
    assert len(seen) == len(set(seen)) and "1000.00" not in seen


async def test_offset_page_and_count(
    orders: None, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await client.post(
        f"{TABLES}/customer/records:bulk",
        headers=admin,
        json=[{"name": f"n{i:02}"} for i in range(12)],
    )
    url = f"{TABLES}/customer/records"
    page = await client.get(url, headers=admin, params={"sort": "name", "limit": 5, "page": 3})
    assert [r["name"] for r in page.json()["items"]] == ["n10", "n11"]
    assert page.json()["next_cursor"] is None
    offset = await client.get(
        url, headers=admin, params={"sort": "-name", "limit": 2, "offset": 1, "count": "true"}
    )
    body = offset.json()
    assert [r["name"] for r in body["items"]] == ["n10", "n09"] and body["total"] == 12
    assert body["next_cursor"] is not None
    both = await client.get(url, headers=admin, params={"page": 2, "cursor": body["next_cursor"]})
    assert both.status_code == 400
    other_sort = await client.get(url, headers=admin, params={"cursor": body["next_cursor"]})
    assert other_sort.status_code == 400
