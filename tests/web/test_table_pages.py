"""Custom table pages over ASGI: the designer's form, the list (columns, fixed and user
filters, search, page size), the form (sections, read-only, hidden values, help), the
actions a page allows, references by display field, and the CSV export."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import httpx

from conveyor.platform import Platform
from tests.web.helpers import signed_in_token

BASE = "/admin/tables/estudante/pages/adultos"
PAGE = {
    "slug": "adultos",
    "title": "Adultos",
    "columns": ["nome", "turma", {"field": "idade", "label": "Anos"}],
    "sort": "-idade",
    "filters": [{"field": "idade", "op": "gte", "value": 18}],
    "user_filters": ["nome"],
    "page_size": 10,
    "sections": [
        {"title": "Dados", "fields": ["nome", "idade"]},
        {"title": "Escola", "fields": ["turma", "nota"]},
    ],
    "read_only": ["nota"],
    "hidden": {"status": "novo"},
    "help": {"nome": "Nome completo do aluno"},
    "actions": {"create": True, "edit": True, "delete": False},
}


async def school(platform: Platform, students: int = 30, page: dict[str, Any] = PAGE) -> None:
    tables = platform.storage.tables
    await tables.create(
        {
            "name": "turma",
            "fields": [{"name": "codigo", "type": "text"}, {"name": "nome", "type": "text"}],
        }
    )
    await tables.update("turma", {"display_field": "nome"})
    await platform.storage.records.create("turma", {"codigo": "T1", "nome": "Turma <A>"})
    await tables.create(
        {
            "name": "estudante",
            "fields": [
                {"name": "nome", "type": "text", "required": True, "searchable": True},
                {"name": "idade", "type": "integer"},
                {"name": "turma", "type": "reference", "table": "turma"},
                {"name": "status", "type": "select", "choices": ["novo", "antigo"]},
                {"name": "nota", "type": "integer", "default": 5},
            ],
        }
    )
    records = [
        {"nome": f"Aluno {i:02}", "idade": i, "turma": 1, "status": "antigo"}
        for i in range(students)
    ]
    for start in range(0, students, 1000):
        await platform.storage.records.create_many("estudante", records[start : start + 1000])
    await platform.storage.pages.create("estudante", page)


def _ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-record="(\d+)"', html)]


def _cells(html: str, column: str) -> list[str]:
    cells = re.findall(rf'data-column="{column}"[^>]*>(.*?)</td>', html, re.S)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in cells]


async def test_the_list_shows_the_pages_columns_sort_and_fixed_filter(
    signed_in: httpx.AsyncClient, platform: Platform
) -> None:
    await school(platform)
    page = await signed_in.get(BASE)
    assert page.status_code == 200, page.text
    html = page.text
    headers = re.findall(r'<th scope="col"[^>]*>\s*<a class="sort"[^>]*>([^<]+)<', html)
    assert headers == ["Id", "nome", "turma", "Anos"]
    # 12 of the 30 students are 18 or older; oldest first, 10 a page.
    assert "Records 1\N{EN DASH}10 of 12" in html
    assert _cells(html, "idade") == [str(n) for n in range(29, 19, -1)]
    # A reference shows the referenced record's display field, escaped, with a link.
    assert '<a href="/admin/tables/turma/records/1">#1 Turma &lt;A&gt;</a>' in html
    second = await signed_in.get(BASE, params={"page": "2"})
    assert _cells(second.text, "idade") == ["19", "18"]
    # The user's own filter narrows within the fixed one; others are refused.
    narrowed = await signed_in.get(BASE, params={"nome[icontains]": "aluno 2"})
    assert sorted(_cells(narrowed.text, "idade")) == [str(n) for n in range(20, 30)]
    refused = await signed_in.get(BASE, params={"idade[lt]": "18"})
    assert refused.status_code == 400
    assert "offers no filter on idade" in refused.text
    # Search, page size and sort by a column header.
    found = await signed_in.get(BASE, params={"q": "Aluno 25"})
    assert _cells(found.text, "idade")[0] == "25"
    bigger = await signed_in.get(BASE, params={"size": "25", "sort": "idade"})
    assert _cells(bigger.text, "idade") == [str(n) for n in range(18, 30)]
    # No delete on this page; no create form for a page that forbids it.
    assert "/delete" not in (await signed_in.get(f"{BASE}/records/30")).text


async def test_the_form_has_sections_help_read_only_and_hidden_values(
    signed_in: httpx.AsyncClient, platform: Platform
) -> None:
    await school(platform)
    form = await signed_in.get(f"{BASE}/new")
    assert form.status_code == 200
    html = form.text
    assert re.findall(r"<legend><h2>([^<]+)</h2>", html) == ["Dados", "Escola"]
    assert "Nome completo do aluno" in html
    assert 'name="v.status"' not in html  # hidden
    assert 'name="v.nota"' not in html and 'data-field="nota"' in html  # read-only
    token = await signed_in_token(signed_in)
    data = {
        "csrf_token": token,
        "v.nome": "Nova",
        "v.idade": "19",
        "v.turma": "1",
        "v.nota": "9",
        "v.status": "antigo",
    }
    created = await signed_in.post(f"{BASE}/new", data=data)
    assert created.status_code == 303, created.text
    record_id = int(re.findall(r"/records/(\d+)\?notice=created", created.headers["location"])[0])
    record = await platform.storage.records.get("estudante", record_id)
    # The hidden value holds, the read-only field keeps its default, whatever was posted.
    assert (record["status"], record["nota"], record["idade"]) == ("novo", 5, 19)

    edit = {
        "csrf_token": token,
        "v.nome": "Nova Silva",
        "v.idade": "19",
        "v.turma": "1",
        "v.nota": "1",
    }
    saved = await signed_in.post(f"{BASE}/records/{record_id}/edit", data=edit)
    assert saved.status_code == 303
    record = await platform.storage.records.get("estudante", record_id)
    assert (record["nome"], record["nota"], record["status"]) == ("Nova Silva", 5, "novo")
    # An edit that takes the record off the page says so and goes back to the list.
    young = edit | {"v.idade": "12"}
    moved = await signed_in.post(f"{BASE}/records/{record_id}/edit", data=young)
    assert moved.headers["location"] == f"{BASE}?notice=elsewhere"
    # Records the fixed filter leaves out are not on the page at all.
    assert (await signed_in.get(f"{BASE}/records/{record_id}")).status_code == 404
    assert (await signed_in.get(f"{BASE}/records/{record_id}/edit")).status_code == 404
    # Errors show next to their field, the hidden value is not blamed on the user.
    bad = await signed_in.post(f"{BASE}/new", data={"csrf_token": token, "v.idade": "x"})
    assert bad.status_code == 422
    assert 'id="nome-error"' in bad.text and 'id="idade-error"' in bad.text


async def test_actions_the_page_does_not_allow_are_refused(
    signed_in: httpx.AsyncClient, platform: Platform
) -> None:
    page = PAGE | {"actions": {"create": False, "edit": False, "delete": False, "export": False}}
    await school(platform, page=page)
    token = await signed_in_token(signed_in)
    html = (await signed_in.get(BASE)).text
    assert "New record" not in html and "Export CSV" not in html
    assert (await signed_in.get(f"{BASE}/new")).status_code == 403
    assert (
        await signed_in.post(f"{BASE}/new", data={"csrf_token": token, "v.nome": "x"})
    ).status_code == 403
    assert (await signed_in.get(f"{BASE}/records/25/edit")).status_code == 403
    assert (
        await signed_in.post(f"{BASE}/records/25/delete", data={"csrf_token": token})
    ).status_code == 403
    assert (await signed_in.get(f"{BASE}/export.csv")).status_code == 403
    assert (await platform.storage.records.get("estudante", 25))["nome"] == "Aluno 24"


async def test_delete_when_the_page_allows_it(
    signed_in: httpx.AsyncClient, platform: Platform
) -> None:
    await school(platform, page=PAGE | {"actions": {"delete": True}})
    token = await signed_in_token(signed_in)
    deleted = await signed_in.post(f"{BASE}/records/25/delete", data={"csrf_token": token})
    assert deleted.headers["location"] == f"{BASE}?notice=deleted"
    # A record outside the page cannot be deleted through it.
    outside = await signed_in.post(f"{BASE}/records/3/delete", data={"csrf_token": token})
    assert outside.status_code == 404
    assert (await platform.storage.records.get("estudante", 3))["idade"] == 2


async def test_the_csv_export_streams_what_the_list_shows(
    signed_in: httpx.AsyncClient, platform: Platform
) -> None:
    await school(platform, students=1200)
    export = await signed_in.get(f"{BASE}/export.csv", params={"nome[icontains]": "aluno 1"})
    assert export.status_code == 200, export.text
    assert export.headers["content-type"].startswith("text/csv")
    assert 'filename="estudante-adultos.csv"' in export.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0] == ["Id", "nome", "turma", "Anos"]
    body = rows[1:]
    expected = [i for i in range(1199, 17, -1) if "aluno 1" in f"aluno {i:02}"]
    assert int(export.headers["x-total-count"]) == len(body) == len(expected)
    assert [int(r[3]) for r in body] == expected
    assert body[0] == [
        str(expected[0] + 1),
        f"Aluno {expected[0]}",
        "#1 Turma <A>",
        str(expected[0]),
    ]
    # The same rows, in the same order, as the list's pages.
    listed: list[int] = []
    for number in range(1, 100):
        html = (
            await signed_in.get(
                BASE, params={"nome[icontains]": "aluno 1", "size": "200", "page": str(number)}
            )
        ).text
        ids = _ids(html)
        if not ids:
            break
        listed += ids
    assert listed == [int(r[0]) for r in body]


async def test_the_designer_builds_a_page_without_json(
    signed_in: httpx.AsyncClient, platform: Platform
) -> None:
    await school(platform)
    new = await signed_in.get("/admin/tables/estudante/page-designer")
    assert new.status_code == 200
    # It starts as the generated page: every field on the form and a filter for each.
    assert 'name="col.nome" value="1" checked' in new.text
    token = await signed_in_token(signed_in)
    form = {
        "csrf_token": token, "title": "Novos estudantes", "slug": "novos",
        "col.nome": "1", "colpos.nome": "1", "col.turma": "1", "colpos.turma": "2",
        "col.idade": "1", "colpos.idade": "3", "label.idade": "Anos",
        "uf.nome": "1", "role.nome": "editable", "section.nome": "Dados", "formpos.nome": "1",
        "role.idade": "read_only", "section.idade": "Dados", "formpos.idade": "2",
        "role.turma": "editable", "section.turma": "Escola", "formpos.turma": "3",
        "role.status": "hidden", "fixed.status": "novo", "role.nota": "left_out",
        "help.nome": "Nome completo", "sort_field": "idade", "sort_direction": "desc",
        "filter.field": ["status", ""], "filter.op": ["eq", "eq"], "filter.value": ["novo", ""],
        "search": "1", "page_size": "25", "action.create": "1", "action.edit": "1",
        "action.export": "1",
    }  # fmt: skip
    preview = await signed_in.post(
        "/admin/tables/estudante/page-designer/preview", data=form, headers={"x-partial": "1"}
    )
    assert preview.status_code == 200
    assert "No records match the fixed filters." in preview.text  # every student is "antigo"
    created = await signed_in.post("/admin/tables/estudante/page-designer", data=form)
    assert created.status_code == 303, created.text
    stored = (await platform.storage.pages.get("estudante", "novos")).page.to_json()
    assert stored | {"description": None} == {
        "slug": "novos", "title": "Novos estudantes", "description": None,
        "columns": ["nome", "turma", {"field": "idade", "label": "Anos"}], "sort": "-idade",
        "filters": [{"field": "status", "op": "eq", "value": "novo"}], "user_filters": ["nome"],
        "search": True, "page_size": 25,
        "sections": [
            {"title": "Dados", "fields": ["nome", "idade"]},
            {"title": "Escola", "fields": ["turma"]},
        ],
        "read_only": ["idade"], "hidden": {"status": "novo"}, "help": {"nome": "Nome completo"},
        "actions": {"create": True, "edit": True, "delete": False, "export": True},
    }  # fmt: skip
    # The designer shows it back as it was saved, and bad input next to its field.
    again = await signed_in.get("/admin/tables/estudante/pages/novos/design")
    assert 'name="fixed.status" value="novo"' in again.text
    bad = await signed_in.post(
        "/admin/tables/estudante/pages/novos/design",
        data=form | {"slug": "Bad Slug", "page_size": "0"},
    )
    assert bad.status_code == 422
    assert 'id="slug-error"' in bad.text and 'id="page_size-error"' in bad.text
    # The navigation lists it under its table.
    index = (await signed_in.get("/admin/pages")).text
    assert 'href="/admin/tables/estudante/pages/novos">Novos estudantes</a>' in index
    assert 'href="/admin/pages"' in index


async def test_the_designer_says_when_a_page_names_a_deleted_field(
    signed_in: httpx.AsyncClient, platform: Platform
) -> None:
    await school(platform)
    await platform.storage.fields.delete("estudante", "nota", force=True)
    design = await signed_in.get(f"{BASE}/design")
    assert "names fields the table no longer has" in design.text
    assert "no field named &#39;nota&#39;" in design.text
    page = await signed_in.get(BASE)
    assert page.status_code == 200 and "data-problems" in page.text
    assert "Records 1\N{EN DASH}10 of 12" in page.text
