"""How rules see records: absent values, `previous`, errors while evaluating."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

TABLES = "/api/v1/zstorage/tables"


@pytest.fixture
async def events(client: httpx.AsyncClient, admin: dict[str, str]) -> str:
    table = {
        "name": "events",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "starts", "type": "date"},
            {"name": "ends", "type": "date"},
            {"name": "seats", "type": "integer"},
            {"name": "price", "type": "decimal", "scale": 2},
        ],
        "rules": [
            {
                "name": "ordered",
                "expression": "!has(record.ends) || record.ends >= record.starts",
                "message": "ends before it starts",
            },
            {
                "name": "no_shrinking",
                "expression": "previous == null || !has(previous.seats) "
                "|| record.seats >= previous.seats",
                "message": "seats can only grow",
            },
            {
                "name": "title_shape",
                "expression": "!has(record.title) || record.title.matches('^[A-Z]')",
                "message": "titles start with a capital",
            },
            {
                "name": "cheap",
                "expression": "!has(record.price) || record.price < 100.0",
                "message": "too expensive",
            },
        ],
    }
    response = await client.post(TABLES, headers=admin, json=table)
    assert response.status_code == 201, response.text
    return f"{TABLES}/events/records"


async def post(client: httpx.AsyncClient, admin: dict[str, str], url: str, **body: Any) -> Any:
    return await client.post(url, headers=admin, json=body)


async def test_rules_see_typed_values_and_absent_ones(
    events: str, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ok = await post(client, admin, events, title="Talk", starts="2025-01-01", price="99.99")
    assert ok.status_code == 201
    backwards = await post(client, admin, events, starts="2025-01-02", ends="2025-01-01")
    assert backwards.status_code == 422
    rules = {d["rule"] for d in backwards.json()["error"]["details"]}
    assert rules == {"ordered"}
    several = await post(client, admin, events, title="talk", price="100.00")
    assert {d["rule"] for d in several.json()["error"]["details"]} == {"title_shape", "cheap"}


async def test_previous_is_null_on_create_and_the_stored_record_on_update(
    events: str, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    created = await post(client, admin, events, seats=10)
    assert created.status_code == 201
    url = f"{events}/{created.json()['id']}"
    assert (await client.patch(url, headers=admin, json={"seats": 12})).status_code == 200
    shrink = await client.patch(url, headers=admin, json={"seats": 11})
    assert shrink.status_code == 422
    assert shrink.json()["error"]["details"] == [
        {"field": None, "rule": "no_shrinking", "message": "seats can only grow"}
    ]


async def test_a_rule_that_cannot_be_evaluated_fails_with_the_reason(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    table = {
        "name": "strict",
        "fields": [{"name": "age", "type": "integer"}],
        "rules": [{"name": "adult", "expression": "record.age >= 18", "message": "18+"}],
    }
    assert (await client.post(TABLES, headers=admin, json=table)).status_code == 201
    response = await client.post(f"{TABLES}/strict/records", headers=admin, json={})
    assert response.status_code == 422
    message = response.json()["error"]["details"][0]["message"]
    assert message == "18+ (not checked: age has no value)"
    non_boolean = {"name": "number", "expression": "record.age + 1", "message": "m"}
    added = await client.post(f"{TABLES}/strict/rules", headers=admin, json=non_boolean)
    assert added.status_code == 201
    response = await client.post(f"{TABLES}/strict/records", headers=admin, json={"age": 20})
    assert response.json()["error"]["details"] == [
        {
            "field": None,
            "rule": "number",
            "message": "m (not checked: the rule did not give true or false)",
        }
    ]


async def test_the_api_documents_every_storage_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = [
        p for p in schema["paths"] if p.startswith("/api/v1/zstorage/tables") and "/links" not in p
    ]
    assert len(paths) == 11  # tables, fields, rules, records, bulk, pages
    create = schema["paths"]["/api/v1/zstorage/tables/{table}/records"]["post"]
    assert "application/json" in create["requestBody"]["content"]
