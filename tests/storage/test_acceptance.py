"""The acceptance scenario of the ZStorage issue, over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conveyor.platform import Platform
from tests.conftest import bearer

TABLES = "/api/v1/zstorage/tables"
RECORDS = f"{TABLES}/estudante/records"
ESTUDANTE: dict[str, Any] = {
    "name": "estudante",
    "label": "Estudante",
    "fields": [
        {"name": "nome", "type": "text", "required": True, "searchable": True},
        {"name": "idade", "type": "integer", "min": 0},
        {"name": "email", "type": "email", "unique": True},
    ],
    "rules": [
        {"name": "adult", "expression": "record.idade >= 18", "message": "must be 18 or older"}
    ],
}
PEOPLE = [
    ("Bruno Costa", 25),
    ("Ana Silva", 30),
    ("Mariana Lopes", 22),
    ("Anabela Souza", 40),
    ("Carlos Ana", 35),
    ("Duda Reis", 18),
    ("Eva Prado", 20),
]


@pytest.fixture
async def writer(platform: Platform) -> dict[str, str]:
    return await bearer(platform, "storage:write")


@pytest.fixture
async def estudante(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, Any]:
    response = await client.post(TABLES, headers=admin, json=ESTUDANTE)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def add_people(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    created = []
    for i, (nome, idade) in enumerate(PEOPLE):
        body = {"nome": nome, "idade": idade, "email": f"p{i}@example.com"}
        response = await client.post(RECORDS, headers=headers, json=body)
        assert response.status_code == 201, response.text
        created.append(response.json())
    return created


async def test_the_table_is_created_with_its_fields_and_rule(
    estudante: dict[str, Any], client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert [f["name"] for f in estudante["fields"]] == ["nome", "idade", "email"]
    assert estudante["rules"] == ESTUDANTE["rules"]
    listed = (await client.get(TABLES, headers=admin)).json()["items"]
    assert [t["name"] for t in listed] == ["estudante"]


async def test_valid_records_are_created_and_read_back(
    estudante: dict[str, Any], client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await client.post(
        RECORDS, headers=writer, json={"nome": "Ana", "idade": 19, "email": "ana@example.com"}
    )
    assert response.status_code == 201
    record = response.json()
    assert record["id"] >= 1 and record["created_at"] == record["updated_at"]
    assert {k: record[k] for k in ("nome", "idade", "email")} == {
        "nome": "Ana",
        "idade": 19,
        "email": "ana@example.com",
    }
    again = await client.get(f"{RECORDS}/{record['id']}", headers=writer)
    assert again.status_code == 200 and again.json() == record


async def test_a_minor_is_refused_with_the_rule_message(
    estudante: dict[str, Any], client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await client.post(RECORDS, headers=writer, json={"nome": "Zé", "idade": 15})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"] == [{"field": None, "rule": "adult", "message": "must be 18 or older"}]
    listed = await client.get(RECORDS, headers=writer)
    assert listed.json()["items"] == []


async def test_every_problem_is_listed_at_once(
    estudante: dict[str, Any], client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    body = {"idade": -3, "email": "not-an-email", "extra": 1, "id": 9}
    response = await client.post(RECORDS, headers=writer, json=body)
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    by_field = {d["field"]: d["message"] for d in details}
    assert by_field["idade"] == "must be at least 0"
    assert by_field["email"] == "must be an email address"
    assert by_field["extra"] == "unknown field"
    assert by_field["id"] == "is a system field and cannot be written"
    assert by_field["nome"] == "is required"


async def test_a_duplicate_email_is_a_409_naming_the_field(
    estudante: dict[str, Any], client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    first = {"nome": "Ana", "idade": 20, "email": "ana@example.com"}
    assert (await client.post(RECORDS, headers=writer, json=first)).status_code == 201
    second = await client.post(RECORDS, headers=writer, json=first | {"nome": "Outra"})
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "unique_violation"
    assert error["details"][0]["field"] == "email"
    assert "email" in error["message"]


async def test_filter_sort_limit_and_the_cursor_walk_the_rest_exactly_once(
    estudante: dict[str, Any], client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await add_people(client, writer)
    expected = sorted((age for _, age in PEOPLE if age >= 20), reverse=True)
    response = await client.get(f"{RECORDS}?idade[gte]=20&sort=-idade&limit=2", headers=writer)
    assert response.status_code == 200
    page = response.json()
    assert [r["idade"] for r in page["items"]] == expected[:2]
    seen = [r["idade"] for r in page["items"]]
    while page["next_cursor"]:
        response = await client.get(
            RECORDS,
            headers=writer,
            params={
                "idade[gte]": "20",
                "sort": "-idade",
                "limit": "2",
                "cursor": page["next_cursor"],
            },
        )
        assert response.status_code == 200
        page = response.json()
        seen += [r["idade"] for r in page["items"]]
    assert seen == expected


async def test_search_finds_ana_ranked_first(
    estudante: dict[str, Any], client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await add_people(client, writer)
    response = await client.get(RECORDS, headers=writer, params={"q": "ana"})
    assert response.status_code == 200
    names = [r["nome"] for r in response.json()["items"]]
    assert set(names) == {"Ana Silva", "Carlos Ana", "Anabela Souza"}
    assert set(names[:2]) == {"Ana Silva", "Carlos Ana"}  # the whole word before the prefix


async def test_search_follows_updates_and_deletes(
    estudante: dict[str, Any], client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    people = await add_people(client, writer)
    ana = next(p for p in people if p["nome"] == "Ana Silva")
    patched = await client.patch(f"{RECORDS}/{ana['id']}", headers=writer, json={"nome": "Bia"})
    assert patched.status_code == 200 and patched.json()["idade"] == 30
    carlos = next(p for p in people if p["nome"] == "Carlos Ana")
    assert (await client.delete(f"{RECORDS}/{carlos['id']}", headers=writer)).status_code == 204
    response = await client.get(RECORDS, headers=writer, params={"q": "ana", "count": "true"})
    body = response.json()
    assert [r["nome"] for r in body["items"]] == ["Anabela Souza"] and body["total"] == 1
    found = await client.get(RECORDS, headers=writer, params={"q": "bia"})
    assert [r["id"] for r in found.json()["items"]] == [ana["id"]]


async def test_scopes_guard_records_and_tables(
    estudante: dict[str, Any], client: httpx.AsyncClient, platform: Platform
) -> None:
    reader = await bearer(platform, "storage:read")
    publisher = await bearer(platform, "publish")
    body = {"nome": "Ana", "idade": 20}
    assert (await client.get(RECORDS, headers=reader)).status_code == 200
    assert (await client.post(RECORDS, headers=reader, json=body)).status_code == 403
    assert (await client.get(RECORDS, headers=publisher)).status_code == 403
    assert (await client.get(TABLES, headers=reader)).status_code == 403
    assert (await client.get(RECORDS)).status_code == 401


async def test_search_results_page_with_the_cursor(
    estudante: dict[str, Any], client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await add_people(client, writer)
    first = await client.get(RECORDS, headers=writer, params={"q": "ana", "limit": 10})
    everything = [r["id"] for r in first.json()["items"]]
    walked: list[int] = []
    params = {"q": "ana", "limit": "1"}
    while True:
        page = (await client.get(RECORDS, headers=writer, params=params)).json()
        walked += [r["id"] for r in page["items"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert walked == everything and len(walked) == 3
