"""Tables, fields and rules: definitions, and changes on tables that hold records."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.platform import Platform
from conveyor.storage.model import TableDef

TABLES = "/api/v1/zstorage/tables"


async def make(client: httpx.AsyncClient, admin: dict[str, str], **table: Any) -> dict[str, Any]:
    response = await client.post(TABLES, headers=admin, json=table)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def add(
    client: httpx.AsyncClient, admin: dict[str, str], table: str, **record: Any
) -> dict[str, Any]:
    response = await client.post(f"{TABLES}/{table}/records", headers=admin, json=record)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_rule_with_a_syntax_error_is_refused_with_its_position(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    table = {
        "name": "t",
        "fields": [{"name": "idade", "type": "integer"}],
        "rules": [{"name": "adult", "expression": "record.idade >= ", "message": "x"}],
    }
    response = await client.post(TABLES, headers=admin, json=table)
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["field"] == "rules[0].expression" and detail["rule"] == "adult"
    assert detail["message"].startswith("syntax error at line 1, column 17")


async def test_a_rule_naming_an_unknown_field_is_refused_with_its_position(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await make(client, admin, name="t", fields=[{"name": "idade", "type": "integer"}])
    rule = {"name": "r", "expression": "record.idade > 1 &&\n  record.age > 2", "message": "m"}
    response = await client.post(f"{TABLES}/t/rules", headers=admin, json=rule)
    assert response.status_code == 422
    message = response.json()["error"]["details"][0]["message"]
    assert message.startswith("unknown field 'age' at line 2, column 10")
    ok = {"name": "r", "expression": "'record.age' != '' && record.idade > 1", "message": "m"}
    assert (await client.post(f"{TABLES}/t/rules", headers=admin, json=ok)).status_code == 201


async def test_every_problem_in_a_table_definition_is_listed(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    table = {
        "name": "t",
        "colour": "red",
        "fields": [
            {"name": "a", "type": "float"},
            {"name": "b", "type": "select"},
            {"name": "c", "type": "integer", "min": 5, "max": 1},
            {"name": "d", "type": "text", "pattern": "("},
            {"name": "e", "type": "integer", "default": "x"},
            {"name": "a", "type": "text"},
            {"name": "f", "type": "reference", "table": "nowhere"},
        ],
    }
    response = await client.post(TABLES, headers=admin, json=table)
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert {
        "colour",
        "fields[0].type",
        "fields[1].choices",
        "fields[2].min",
        "fields[3].pattern",
        "fields[4].default",
        "fields[5].name",
    } <= fields
    assert (await client.get(f"{TABLES}/t", headers=admin)).status_code == 404


async def test_tables_are_admin_only_and_named_once(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    await make(client, admin, name="t")
    again = await client.post(TABLES, headers=admin, json={"name": "t"})
    assert again.status_code == 409
    patched = await client.patch(f"{TABLES}/t", headers=admin, json={"label": "Tee"})
    assert patched.status_code == 200 and patched.json()["label"] == "Tee"
    rename = await client.patch(f"{TABLES}/t", headers=admin, json={"name": "u"})
    assert rename.status_code == 422


async def test_deleting_a_table_with_records_needs_force(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await make(client, admin, name="t", fields=[{"name": "a", "type": "text", "searchable": True}])
    await add(client, admin, "t", a="x")
    refused = await client.delete(f"{TABLES}/t", headers=admin)
    assert refused.status_code == 409 and "1 records" in refused.json()["error"]["message"]
    assert (await client.delete(f"{TABLES}/t?force=true", headers=admin)).status_code == 204
    assert (await client.get(f"{TABLES}/t/records", headers=admin)).status_code == 404
    # The name, its SQL table and its search index are free again.
    await make(client, admin, name="t", fields=[{"name": "a", "type": "text", "searchable": True}])
    assert (await client.get(f"{TABLES}/t/records", headers=admin)).json()["items"] == []


async def test_adding_fields_to_a_table_with_records(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await make(client, admin, name="t", fields=[{"name": "a", "type": "text"}])
    record = await add(client, admin, "t", a="x")
    fields = f"{TABLES}/t/fields"
    optional = await client.post(fields, headers=admin, json={"name": "b", "type": "integer"})
    assert optional.status_code == 201
    required = {"name": "c", "type": "text", "required": True}
    refused = await client.post(fields, headers=admin, json=required)
    assert refused.status_code == 409 and "default" in refused.json()["error"]["message"]
    filled = await client.post(fields, headers=admin, json=required | {"default": "zz"})
    assert filled.status_code == 201
    got = (await client.get(f"{TABLES}/t/records/{record['id']}", headers=admin)).json()
    assert got["a"] == "x" and got["b"] is None and got["c"] == "zz"
    assert (
        await client.post(fields, headers=admin, json={"name": "a", "type": "text"})
    ).status_code == 409


async def test_type_changes_keep_data_or_are_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await make(
        client,
        admin,
        name="t",
        fields=[
            {"name": "contact", "type": "text", "searchable": True, "max": 40},
            {"name": "n", "type": "integer", "min": 0},
        ],
    )
    bad = await add(client, admin, "t", contact="not an email", n=1)
    field = f"{TABLES}/t/fields/contact"
    refused = await client.patch(field, headers=admin, json={"type": "email"})
    assert refused.status_code == 409
    assert str(bad["id"]) in refused.json()["error"]["message"]
    fix = await client.patch(
        f"{TABLES}/t/records/{bad['id']}", headers=admin, json={"contact": "a@b.co"}
    )
    assert fix.status_code == 200
    retyped = await client.patch(field, headers=admin, json={"type": "email"})
    assert retyped.status_code == 200
    contact = retyped.json()["fields"][0]
    assert (contact["type"], contact["searchable"], contact["max"]) == ("email", True, 40)
    found = await client.get(f"{TABLES}/t/records", headers=admin, params={"q": "a"})
    assert [r["id"] for r in found.json()["items"]] == [bad["id"]]
    wrong = await client.post(f"{TABLES}/t/records", headers=admin, json={"contact": "nope"})
    assert wrong.status_code == 422
    to_date = await client.patch(f"{TABLES}/t/fields/n", headers=admin, json={"type": "date"})
    assert to_date.status_code == 409 and str(bad["id"]) in to_date.json()["error"]["message"]
    got = (await client.get(f"{TABLES}/t/records/{bad['id']}", headers=admin)).json()
    assert got == fix.json()


async def test_values_are_converted_when_every_one_fits(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await make(
        client,
        admin,
        name="t",
        fields=[
            {"name": "n", "type": "integer", "indexed": True},
            {"name": "code", "type": "text", "unique": True},
            {"name": "owner", "type": "reference", "table": "t"},
        ],
    )
    first = await add(client, admin, "t", n=7, code="0042")
    second = await add(client, admin, "t", n=-3, code="17", owner=first["id"])
    field = f"{TABLES}/t/fields"
    widened = await client.patch(f"{field}/n", headers=admin, json={"type": "decimal", "scale": 2})
    assert widened.status_code == 200, widened.text
    assert widened.json()["fields"][0]["indexed"] is True
    parsed = await client.patch(f"{field}/code", headers=admin, json={"type": "integer"})
    assert parsed.status_code == 200, parsed.text
    records = f"{TABLES}/t/records"
    got = [
        (await client.get(f"{records}/{r['id']}", headers=admin)).json() for r in (first, second)
    ]
    assert [(r["n"], r["code"]) for r in got] == [("7.00", 42), ("-3.00", 17)]
    assert (await client.post(records, headers=admin, json={"code": 42})).status_code == 409
    found = await client.get(records, headers=admin, params={"n[gte]": "0.5", "sort": "-n"})
    assert [r["id"] for r in found.json()["items"]] == [first["id"]]
    as_text = await client.patch(f"{field}/n", headers=admin, json={"type": "text"})
    assert as_text.status_code == 200
    again = (await client.get(f"{records}/{first['id']}", headers=admin)).json()
    assert again["n"] == "7.00"
    owner = await client.patch(f"{field}/owner", headers=admin, json={"type": "integer"})
    assert owner.status_code == 409 and "holds records" in owner.json()["error"]["message"]


async def test_any_type_change_works_on_an_empty_table(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await make(client, admin, name="t", fields=[{"name": "n", "type": "integer", "unique": True}])
    changed = await client.patch(f"{TABLES}/t/fields/n", headers=admin, json={"type": "date"})
    assert changed.status_code == 200 and changed.json()["fields"][0]["type"] == "date"
    assert changed.json()["fields"][0]["unique"] is True  # still means the same: kept
    assert (await add(client, admin, "t", n="2024-02-29"))["n"] == "2024-02-29"
    again = await client.post(f"{TABLES}/t/records", headers=admin, json={"n": "2024-02-29"})
    assert again.status_code == 409


async def test_tightening_options_checks_existing_values(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await make(client, admin, name="t", fields=[{"name": "n", "type": "integer"}])
    first = await add(client, admin, "t", n=5)
    await add(client, admin, "t", n=5)
    field = f"{TABLES}/t/fields/n"
    assert (await client.patch(field, headers=admin, json={"min": 10})).status_code == 409
    assert (await client.patch(field, headers=admin, json={"unique": True})).status_code == 409
    assert (await client.patch(field, headers=admin, json={"min": 0})).status_code == 200
    await client.patch(f"{TABLES}/t/records/{first['id']}", headers=admin, json={"n": 6})
    assert (await client.patch(field, headers=admin, json={"unique": True})).status_code == 200
    duplicate = await client.post(f"{TABLES}/t/records", headers=admin, json={"n": 6})
    assert duplicate.status_code == 409
    await add(client, admin, "t")
    required = await client.patch(field, headers=admin, json={"required": True})
    assert required.status_code == 409 and "no value" in required.json()["error"]["message"]


async def test_renaming_a_field_keeps_its_values_and_search(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await make(
        client,
        admin,
        name="t",
        fields=[
            {"name": "nome", "type": "text", "searchable": True},
            {"name": "n", "type": "integer"},
        ],
        rules=[{"name": "positive", "expression": "record.n > 0", "message": "m"}],
    )
    record = await add(client, admin, "t", nome="Ana", n=1)
    renamed = await client.patch(f"{TABLES}/t/fields/nome", headers=admin, json={"name": "name"})
    assert renamed.status_code == 200
    got = (await client.get(f"{TABLES}/t/records/{record['id']}", headers=admin)).json()
    assert got["name"] == "Ana" and "nome" not in got
    found = await client.get(f"{TABLES}/t/records", headers=admin, params={"q": "ana"})
    assert [r["id"] for r in found.json()["items"]] == [record["id"]]
    used = await client.patch(f"{TABLES}/t/fields/n", headers=admin, json={"name": "m"})
    assert used.status_code == 422 and used.json()["error"]["details"][0]["rule"] == "positive"


async def test_deleting_fields(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    await make(
        client,
        admin,
        name="t",
        fields=[
            {"name": "a", "type": "text", "searchable": True, "indexed": True},
            {"name": "b", "type": "text", "searchable": True},
            {"name": "n", "type": "integer"},
        ],
        rules=[{"name": "r", "expression": "record.n > 0", "message": "m"}],
    )
    await add(client, admin, "t", a="alpha", b="beta", n=1)
    assert (await client.delete(f"{TABLES}/t/fields/n", headers=admin)).status_code == 409
    assert (await client.delete(f"{TABLES}/t/rules/r", headers=admin)).status_code == 200
    held = await client.delete(f"{TABLES}/t/fields/a", headers=admin)
    assert held.status_code == 409 and "force" in held.json()["error"]["message"]
    dropped = await client.delete(f"{TABLES}/t/fields/a?force=true", headers=admin)
    assert dropped.status_code == 200
    assert [f["name"] for f in dropped.json()["fields"]] == ["b", "n"]
    found = await client.get(f"{TABLES}/t/records", headers=admin, params={"q": "beta"})
    assert len(found.json()["items"]) == 1
    assert (await client.delete(f"{TABLES}/t/fields/zz", headers=admin)).status_code == 404


async def test_a_definition_change_is_seen_by_another_process_at_once(
    client: httpx.AsyncClient, admin: dict[str, str], settings: Any
) -> None:
    await make(client, admin, name="t", fields=[{"name": "a", "type": "text"}])
    await add(client, admin, "t", a="x")  # the first process caches the definition
    other = Platform(settings)
    async with other:
        await other.storage.fields.add("t", {"name": "b", "type": "integer"})
    record = await add(client, admin, "t", a="y", b=2)
    assert record["b"] == 2
    # A write the stale definition would accept: the version check sends it the long way.
    async with Platform(settings) as other:
        await other.storage.fields.delete("t", "b", force=True)
    record = await add(client, admin, "t", a="z")
    assert "b" not in record and record["a"] == "z"


@pytest.mark.parametrize(
    ("field", "good", "stored", "bad"),
    [
        ({"type": "decimal", "precision": 6, "scale": 2}, "1234.5", "1234.50", "1.234"),
        ({"type": "decimal", "scale": 2}, 0.1, "0.10", "NaN"),
        ({"type": "boolean"}, False, False, "false"),
        ({"type": "date"}, "2024-02-29", "2024-02-29", "2023-02-29"),
        (
            {"type": "datetime"},
            "2024-01-01T10:00:00+02:00",
            "2024-01-01T08:00:00+00:00",
            "2024-01-01T10:00:00",
        ),
        ({"type": "json"}, {"a": [1, None]}, {"a": [1, None]}, None),
        ({"type": "url"}, "https://x.io/a?b=1", "https://x.io/a?b=1", "javascript:alert(1)"),
        ({"type": "select", "choices": ["a", "b"]}, "b", "b", "c"),
        ({"type": "text", "min": 2, "max": 3, "pattern": "[a-z]+"}, "abc", "abc", "ABC"),
        ({"type": "integer", "max": 10}, 10, 10, 1.5),
        ({"type": "integer"}, -(2**63), -(2**63), 2**63),
    ],
)
async def test_each_type_stores_exactly_and_refuses_bad_values(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    field: dict[str, Any],
    good: Any,
    stored: Any,
    bad: Any,
) -> None:
    await make(client, admin, name="t", fields=[{"name": "v", **field}])
    record = await add(client, admin, "t", v=good)
    assert record["v"] == stored
    got = await client.get(f"{TABLES}/t/records/{record['id']}", headers=admin)
    assert got.json()["v"] == stored
    if field["type"] not in ("json", "boolean"):
        found = await client.get(f"{TABLES}/t/records", headers=admin, params={"v": str(stored)})
        assert [r["id"] for r in found.json()["items"]] == [record["id"]]
    if bad is not None:
        response = await client.post(f"{TABLES}/t/records", headers=admin, json={"v": bad})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"] == "v"


async def test_reference_fields_change_only_where_the_database_can(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    await make(
        client, admin, name="t", fields=[{"name": "parent", "type": "reference", "table": "t"}]
    )
    field = f"{TABLES}/t/fields/parent"
    retyped = await client.patch(field, headers=admin, json={"type": "integer"})
    deleted = await client.delete(field, headers=admin)
    if platform.db.dialect == "sqlite":
        assert retyped.status_code == deleted.status_code == 409
        assert "SQLite" in deleted.json()["error"]["message"]
    else:
        assert retyped.status_code == 200 and deleted.status_code == 200


async def test_records_written_during_definition_changes_all_land(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    await make(client, admin, name="t", fields=[{"name": "a", "type": "text", "searchable": True}])
    await add(client, admin, "t", a="warm")  # cache the definition

    async def writes() -> list[int]:
        return [
            (
                await client.post(f"{TABLES}/t/records", headers=admin, json={"a": f"w{i}"})
            ).status_code
            for i in range(15)
        ]

    async def changes() -> None:
        fields = platform.storage.fields
        await fields.add("t", {"name": "b", "type": "integer", "indexed": True})
        await fields.update("t", "a", {"name": "c"})
        await fields.delete("t", "b", force=True)

    async def reads() -> list[int]:
        url = f"{TABLES}/t/records"
        return [(await client.get(url, headers=admin)).status_code for _ in range(15)]

    statuses, read_statuses, _ = await asyncio.gather(writes(), reads(), changes())
    assert set(read_statuses) == {200}
    # A write that raced a rename of its field is refused cleanly; none is lost or a 500.
    assert set(statuses) <= {201, 422}
    listed = await client.get(f"{TABLES}/t/records", headers=admin, params={"count": "true"})
    assert listed.json()["total"] == 1 + statuses.count(201)


async def test_a_read_retries_while_definition_changes_land_under_it(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    """Three changes in a row, each committing between a read's definition and its rows."""
    await make(client, admin, name="t", fields=[{"name": "a", "type": "text"}])
    records = platform.storage.records
    changes = [
        lambda: platform.storage.fields.add("t", {"name": "b", "type": "integer"}),
        lambda: platform.storage.fields.update("t", "a", {"name": "c"}),
        lambda: platform.storage.fields.delete("t", "b", force=True),
    ]
    seen: list[tuple[str, ...]] = []

    async def read(conn: AsyncConnection, table: TableDef) -> int:
        seen.append(tuple(f.name for f in table.fields))
        if changes:
            await changes.pop(0)()
            await conn.execute(sa.text("SELECT no_such_column FROM " + table.sql_name))
        return len(table.fields)

    assert await records._read("t", read) == 1
    assert seen == [("a",), ("a", "b"), ("c", "b"), ("c",)]


async def test_a_read_that_fails_on_an_unchanged_definition_is_not_retried(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    await make(client, admin, name="t", fields=[{"name": "a", "type": "text"}])
    calls = 0

    async def read(conn: AsyncConnection, table: TableDef) -> None:
        nonlocal calls
        calls += 1
        await conn.execute(sa.text("SELECT no_such_column FROM " + table.sql_name))

    with pytest.raises((ProgrammingError, OperationalError)):
        await platform.storage.records._read("t", read)
    assert calls == 1
