"""Issue 19, record queries: user errors are 400s, never 503s (item 7), and the smaller
items on records (item 11)."""

from __future__ import annotations

import logging

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from conveyor.platform import Platform

TABLES = "/api/v1/zstorage/tables"
RECORDS = f"{TABLES}/people/records"


@pytest.fixture
async def people(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    table = {
        "name": "people",
        "fields": [
            {"name": "name", "type": "text", "searchable": True},
            {"name": "age", "type": "integer"},
        ],
    }
    assert (await client.post(TABLES, headers=admin, json=table)).status_code == 201
    for body in ({"name": "Ana", "age": 30}, {"name": "Bob", "age": 40}):
        assert (await client.post(RECORDS, headers=admin, json=body)).status_code == 201
    return admin


async def test_a_thousand_filters_are_a_400_not_a_503(
    client: httpx.AsyncClient, people: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    params = [("age[gte]", str(n)) for n in range(1000)]
    response = await client.get(RECORDS, headers=people, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == "filters: at most 50 filters"
    fifty = await client.get(RECORDS, headers=people, params=[*params[:49], ("name", "Bob")])
    assert fifty.status_code == 200 and fifty.json()["items"] == []
    assert "SELECT" not in caplog.text


async def test_database_errors_never_carry_the_statements_parameters(platform: Platform) -> None:
    secret = "s3cret-value-8731"
    with pytest.raises(DBAPIError) as raised:
        async with platform.db.read() as conn:
            await conn.execute(sa.text("SELECT * FROM no_such_table WHERE x = :v"), {"v": secret})
    assert secret not in str(raised.value)


async def test_record_writes_need_a_json_content_type(
    client: httpx.AsyncClient, people: dict[str, str]
) -> None:
    body = b'{"name": "Cy"}'
    for headers in ({}, {"Content-Type": "text/plain"}):
        response = await client.post(RECORDS, headers=people | headers, content=body)
        assert response.status_code == 415, (headers, response.text)
        assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "١٢"},  # Arabic-Indic digits
        {"limit": "\uff11\uff10"},  # fullwidth
        {"offset": "٣"},
        {"age": "٣٠"},
        {"age[gte]": "\uff13\uff10"},
    ],
)
async def test_only_ascii_digits_are_numbers(
    client: httpx.AsyncClient, people: dict[str, str], params: dict[str, str]
) -> None:
    response = await client.get(RECORDS, headers=people, params=params)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("op", ["", "[contains]", "[icontains]", "[startswith]"])
async def test_a_nul_byte_in_a_filter_value_is_a_400(
    client: httpx.AsyncClient, people: dict[str, str], op: str
) -> None:
    response = await client.get(RECORDS, headers=people, params={f"name{op}": "\x00"})
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["error"]["message"]


async def test_a_nul_byte_in_search_text_is_a_400(
    client: httpx.AsyncClient, people: dict[str, str]
) -> None:
    response = await client.get(RECORDS, headers=people, params={"q": "an\x00a"})
    assert response.status_code == 400, response.text
