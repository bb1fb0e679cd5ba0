"""Custom table pages through the API: definitions, validation, renames and deletions."""

from __future__ import annotations

import httpx

from conveyor.platform import Platform
from tests.conftest import bearer
from tests.storage.test_tables import TABLES, add, make

PAGES = f"{TABLES}/estudante/pages"
ADULTOS = {
    "slug": "adultos",
    "title": "Adultos",
    "columns": ["nome", "turma", {"field": "idade", "label": "Anos"}],
    "sort": "-idade",
    "filters": [{"field": "idade", "op": "gte", "value": 18}],
    "user_filters": ["nome"],
    "search": True,
    "page_size": 50,
    "sections": [
        {"title": "Dados", "fields": ["nome", "idade"]},
        {"title": "Escola", "fields": ["turma"]},
    ],
    "read_only": ["idade"],
    "hidden": {"status": "novo"},
    "help": {"nome": "Nome completo"},
    "actions": {"create": True, "edit": True, "delete": False},
}


async def school(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    await make(
        client, admin, name="turma", fields=[{"name": "nome", "type": "text", "required": True}]
    )
    await make(
        client,
        admin,
        name="estudante",
        fields=[
            {"name": "nome", "type": "text", "required": True, "searchable": True},
            {"name": "idade", "type": "integer"},
            {"name": "turma", "type": "reference", "table": "turma"},
            {"name": "status", "type": "select", "choices": ["novo", "antigo"]},
            {"name": "notas", "type": "json"},
        ],
    )


async def test_a_page_is_created_read_listed_replaced_and_deleted(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await school(client, admin)
    created = await client.post(PAGES, headers=admin, json=ADULTOS)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["table"] == "estudante" and body["problems"] == []
    for key, value in ADULTOS.items():
        if key != "actions":
            assert body[key] == value, key
    assert body["actions"] == {"create": True, "edit": True, "delete": False, "export": True}

    again = await client.post(PAGES, headers=admin, json=ADULTOS)
    assert again.status_code == 409
    assert (await client.get(f"{PAGES}/adultos", headers=admin)).json() == body
    listed = (await client.get(PAGES, headers=admin)).json()["items"]
    assert [p["slug"] for p in listed] == ["adultos"]

    # What GET returns can be PUT back (or POSTed to another environment) as it is.
    copy = body | {"title": "Maiores de idade", "page_size": 25}
    replaced = await client.put(f"{PAGES}/adultos", headers=admin, json=copy)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["title"] == "Maiores de idade"
    assert replaced.json()["created_at"] == body["created_at"]
    put_new = await client.put(f"{PAGES}/novos", headers=admin, json={"title": "Novos"})
    assert put_new.status_code == 201 and put_new.json()["slug"] == "novos"
    assert put_new.json()["columns"] is None  # as the generated page
    moved = await client.put(
        f"{PAGES}/novos", headers=admin, json={"slug": "recentes", "title": "R"}
    )
    assert moved.status_code == 200 and moved.json()["slug"] == "recentes"
    assert (await client.get(f"{PAGES}/novos", headers=admin)).status_code == 404
    taken = await client.put(
        f"{PAGES}/recentes", headers=admin, json={"slug": "adultos", "title": "R"}
    )
    assert taken.status_code == 409

    assert (await client.delete(f"{PAGES}/adultos", headers=admin)).status_code == 204
    missing = await client.get(f"{PAGES}/adultos", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "page_not_found"
    assert (await client.get(f"{TABLES}/nowhere/pages", headers=admin)).status_code == 404


async def test_pages_are_for_admin_keys_only(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    await school(client, admin)
    reader = await bearer(platform, "storage:read", "storage:write")
    assert (await client.get(PAGES, headers=reader)).status_code == 403
    assert (await client.post(PAGES, headers=reader, json=ADULTOS)).status_code == 403
    assert (await client.get(PAGES)).status_code == 401


async def test_an_invalid_page_is_a_422_naming_each_problem(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await school(client, admin)
    bad = {
        "slug": "Not A Slug",
        "title": "",
        "colour": "red",
        "columns": ["nome", "nope", "nome", 7],
        "sort": "-notas,ghost",
        "filters": [
            {"field": "idade", "op": "gte", "value": "eighteen"},
            {"field": "idade", "op": "contains", "value": "1"},
            {"field": "ghost", "op": "eq", "value": 1},
        ],
        "user_filters": ["ghost"],
        "search": "yes",
        "page_size": 0,
        "sections": [
            {"title": "A", "fields": ["nome", "status"]},
            {"title": "B", "fields": ["nome"]},
        ],
        "read_only": ["ghost"],
        "hidden": {"status": "velho"},
        "help": {"nome": 5},
        "actions": {"create": "yes", "fly": True},
    }
    response = await client.post(PAGES, headers=admin, json=bad)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    fields = {d["field"] for d in error["details"]}
    assert fields == {
        "slug", "title", "colour", "columns[2]", "columns[3]", "search",
        "page_size", "help.nome", "actions.create", "actions.fly",
    }  # fmt: skip
    # Shape first; once the shape holds, every name is checked against the table.
    bad = {
        "slug": "adultos",
        "title": "Adultos",
        "columns": ["nome", "nope"],
        "sort": "-notas,ghost",
        "filters": [
            {"field": "idade", "op": "gte", "value": "eighteen"},
            {"field": "idade", "op": "contains", "value": "1"},
            {"field": "ghost", "op": "eq", "value": 1},
            {"field": "status", "op": "in", "value": []},
        ],
        "user_filters": ["ghost"],
        "sections": [
            {"title": "A", "fields": ["nome", "status"]},
            {"title": "B", "fields": ["nome", "id"]},
        ],
        "read_only": ["ghost"],
        "hidden": {"status": "velho", "ghost": 1},
        "help": {"ghost": "?"},
    }
    response = await client.post(PAGES, headers=admin, json=bad)
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    by_field: dict[str, list[str]] = {}
    for d in details:
        by_field.setdefault(d["field"], []).append(d["message"])
    assert set(by_field) == {
        "columns[1]", "sort", "filters[0].value", "filters[1].op", "filters[2].field",
        "filters[3].value", "user_filters[0]", "sections[0].fields[1]", "sections[1].fields[0]",
        "sections[1].fields[1]", "read_only[0]", "hidden.status", "hidden.ghost", "help.ghost",
    }  # fmt: skip
    assert len(by_field["sort"]) == 2  # json cannot be sorted; ghost does not exist
    assert "no field named 'nope'" in by_field["columns[1]"][0]
    assert "hidden" in by_field["sections[0].fields[1]"][0]
    # Nothing was stored.
    assert (await client.get(PAGES, headers=admin)).json()["items"] == []
    not_object = await client.post(PAGES, headers=admin, json=["x"])
    assert not_object.status_code == 422


async def test_a_page_that_could_not_create_its_records_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await school(client, admin)
    page = {"slug": "p", "title": "P", "sections": [{"title": "", "fields": ["idade"]}]}
    response = await client.post(PAGES, headers=admin, json=page)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "sections"
    assert "'nome'" in response.json()["error"]["details"][0]["message"]
    no_create = page | {"actions": {"create": False}}
    assert (await client.post(PAGES, headers=admin, json=no_create)).status_code == 201


async def test_pages_follow_field_renames(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    await school(client, admin)
    assert (await client.post(PAGES, headers=admin, json=ADULTOS)).status_code == 201
    shown = await client.patch(f"{TABLES}/estudante", headers=admin, json={"display_field": "nome"})
    assert shown.status_code == 200 and shown.json()["display_field"] == "nome"
    for old, new in (("idade", "anos"), ("nome", "nome_completo"), ("status", "estado")):
        renamed = await client.patch(
            f"{TABLES}/estudante/fields/{old}", headers=admin, json={"name": new}
        )
        assert renamed.status_code == 200, renamed.text
    page = (await client.get(f"{PAGES}/adultos", headers=admin)).json()
    assert page["problems"] == []
    assert page["columns"] == ["nome_completo", "turma", {"field": "anos", "label": "Anos"}]
    assert page["sort"] == "-anos"
    assert page["filters"] == [{"field": "anos", "op": "gte", "value": 18}]
    assert page["user_filters"] == ["nome_completo"]
    assert page["sections"][0]["fields"] == ["nome_completo", "anos"]
    assert page["read_only"] == ["anos"]
    assert page["hidden"] == {"estado": "novo"}
    assert page["help"] == {"nome_completo": "Nome completo"}
    table = (await client.get(f"{TABLES}/estudante", headers=admin)).json()
    assert table["display_field"] == "nome_completo"


async def test_a_page_naming_a_deleted_field_says_so_and_keeps_working(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    await school(client, admin)
    page = ADULTOS | {"columns": ["nome", "idade", "notas"], "sort": "-idade"}
    assert (await client.post(PAGES, headers=admin, json=page)).status_code == 201
    for i in range(30):
        await add(client, admin, table="estudante", nome=f"Aluno {i}", idade=i, status="novo")
    deleted = await client.delete(f"{TABLES}/estudante/fields/notas", headers=admin)
    assert deleted.status_code == 200
    body = (await client.get(f"{PAGES}/adultos", headers=admin)).json()
    assert body["columns"] == ["nome", "idade", "notas"]  # kept as written...
    assert body["problems"] == [
        {
            "field": "columns[2]",
            "rule": None,
            "message": "no field named 'notas' (deleted, or never in this table)",
        }
    ]  # ...and reported
    resolved = await platform.storage.pages.resolved("estudante", "adultos")
    assert [f.name for f, _ in resolved.columns] == ["nome", "idade"]
    # The fixed filter holds: 12 of the 30 are 18 or older, oldest first.
    items, _, total = await platform.storage.records.query(
        "estudante", [("sort", resolved.sort), ("count", "true")], fixed=resolved.page.filters
    )
    assert total == 12 and [r["idade"] for r in items][:3] == [29, 28, 27]
    # The filtered field deleted too: the page keeps working, now without that filter.
    await client.patch(f"{TABLES}/estudante/fields/idade", headers=admin, json={"name": "anos"})
    await client.delete(f"{TABLES}/estudante/fields/anos?force=true", headers=admin)
    resolved = await platform.storage.pages.resolved("estudante", "adultos")
    assert {p["field"] for p in resolved.problems} >= {"columns[1]", "filters[0].field", "sort"}
    _, _, total = await platform.storage.records.query(
        "estudante", [("count", "true")], fixed=resolved.page.filters
    )
    assert total == 30
    # A new field with the name of a deleted one is what the page names again.
    await client.post(
        f"{TABLES}/estudante/fields", headers=admin, json={"name": "notas", "type": "text"}
    )
    body = (await client.get(f"{PAGES}/adultos", headers=admin)).json()
    assert "columns[2]" not in {p["field"] for p in body["problems"]}


async def test_the_display_field_is_chosen_per_table(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await school(client, admin)
    url = f"{TABLES}/estudante"
    for bad in ("notas", "turma", "ghost", 3):
        response = await client.patch(url, headers=admin, json={"display_field": bad})
        assert response.status_code == 422, bad
        assert response.json()["error"]["details"][0]["field"] == "display_field"
    assert (
        await client.patch(url, headers=admin, json={"display_field": "status"})
    ).status_code == 200
    await client.delete(f"{url}/fields/status", headers=admin)
    assert (await client.get(url, headers=admin)).json()["display_field"] is None
    reset = await client.patch(url, headers=admin, json={"display_field": None})
    assert reset.status_code == 200
