"""Custom table pages in real headless Chromium: designed in the page designer, then
used to create, edit and find records; the CSV export of 10,000 records."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from conveyor.platform import Platform
from tests.browser.conftest import BackOffice, run_async, screenshot, sign_in

pytestmark = pytest.mark.browser
ADULTS = 10_000
BASE = "/admin/tables/estudante/pages/adultos"


def _school(backoffice: BackOffice) -> str:
    """Two tables, 10,000 adult students and 50 younger ones; an admin API key."""

    async def work() -> str:
        async with Platform(backoffice.settings) as platform:
            tables, records = platform.storage.tables, platform.storage.records
            await tables.create({"name": "turma", "fields": [{"name": "nome", "type": "text"}]})
            await tables.update("turma", {"display_field": "nome"})
            await records.create_many("turma", [{"nome": "Turma A"}, {"nome": "Turma B"}])
            await tables.create(
                {
                    "name": "estudante",
                    "fields": [
                        {"name": "nome", "type": "text", "required": True, "searchable": True},
                        {"name": "idade", "type": "integer", "indexed": True},
                        {"name": "turma", "type": "reference", "table": "turma"},
                        {"name": "status", "type": "select", "choices": ["novo", "antigo"]},
                        {"name": "nota", "type": "integer", "default": 5},
                    ],
                }
            )
            people = [
                {"nome": f"Aluno {i:05}", "idade": 18 + i % 50, "turma": 1 + i % 2}
                for i in range(ADULTS)
            ] + [{"nome": f"Menor {i}", "idade": 10 + i % 8} for i in range(50)]
            for start in range(0, len(people), 1000):
                await records.create_many("estudante", people[start : start + 1000])
            _, token = await platform.keys.create("pages-test", ["admin"])
            return token

    return run_async(work)


def _design(page: Page) -> None:
    page.goto("/admin/pages")
    page.locator('[data-table="estudante"]').get_by_role("link", name="New page").click()
    expect(page.get_by_role("heading", name="New page of estudante")).to_be_visible()
    page.get_by_label("Title").fill("Adultos")
    page.get_by_label("Address").fill("adultos")
    # Three columns: nome, turma (a reference) and idade, labelled "Anos".
    for name in ("status", "nota"):
        page.get_by_label(f"{name}: column", exact=True).uncheck()
    page.get_by_label("idade: column label").fill("Anos")
    page.get_by_label("turma: column position").fill("2")
    page.get_by_label("idade: column position").fill("3")
    for name in ("idade", "turma", "status", "nota"):
        page.get_by_label(f"{name}: users may filter").uncheck()
    # The form: two sections, nota read-only, status hidden with a fixed value.
    page.get_by_label("nome: section").fill("Dados")
    page.get_by_label("idade: section").fill("Dados")
    page.get_by_label("turma: section").fill("Escola")
    page.get_by_label("nota: section").fill("Escola")
    page.get_by_label("nota: on the form").select_option("read_only")
    page.get_by_label("status: on the form").select_option("hidden")
    page.get_by_label("status: fixed value").fill("novo")
    page.get_by_label("nome: help").fill("Nome completo do aluno")
    page.get_by_label("Sorted by").select_option("nome")
    page.get_by_label("Fixed filter 1: field").select_option("idade")
    page.get_by_label("Fixed filter 1: operator").select_option("gte")
    page.get_by_label("Fixed filter 1: value").fill("18")
    page.get_by_label("delete", exact=True).uncheck()
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("[data-preview-list]")
    expect(preview.locator("thead th")).to_have_text(["Id", "nome", "turma", "Anos"])
    expect(preview.locator("tbody tr")).to_have_count(5)
    expect(preview.locator("tbody tr").first).to_contain_text("Turma A")
    expect(page.locator("[data-preview-form] legend")).to_have_text(["Dados", "Escola"])
    screenshot(page, "page-designer")
    page.get_by_role("button", name="Create page").click()
    expect(page.get_by_role("status").first).to_have_text("Page saved.")


def _api(backoffice: BackOffice, token: str, path: str, **params: str) -> dict[str, object]:
    response = httpx.get(
        backoffice.url(path), params=params, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_design_a_page_and_use_it(page: Page, backoffice: BackOffice) -> None:
    token = _school(backoffice)
    sign_in(page)
    _design(page)
    definition = _api(backoffice, token, "/api/v1/zstorage/tables/estudante/pages/adultos")
    assert definition["columns"] == ["nome", "turma", {"field": "idade", "label": "Anos"}]
    assert definition["hidden"] == {"status": "novo"} and definition["read_only"] == ["nota"]

    # The navigation lists the page under its table.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pages").click()
    page.locator('[data-table="estudante"]').get_by_role("link", name="Adultos", exact=True).click()
    expect(page).to_have_url(re.compile(BASE + "$"))
    expect(page.locator("#summary")).to_have_text(re.compile(r"of 10,000$"))
    headers = page.locator("table.records thead th")
    expect(headers).to_have_text(
        [re.compile(t) for t in (r"^\s*Id", r"^\s*nome", r"^\s*turma", r"^\s*Anos")]
    )
    first = page.locator("tbody tr").first
    expect(first.locator('[data-column="turma"] a')).to_have_text("#1 Turma A")
    expect(first.locator('[data-column="turma"] a')).to_have_attribute(
        "href", "/admin/tables/turma/records/1"
    )
    screenshot(page, "page-list")

    # Create: two sections, help, the read-only value shown, no input for the hidden field.
    page.get_by_role("link", name="New record").click()
    expect(page.locator("fieldset.page-section legend")).to_have_text(["Dados", "Escola"])
    expect(page.get_by_text("Nome completo do aluno")).to_be_visible()
    expect(page.locator('[data-field="nota"]')).to_contain_text("read-only")
    expect(page.locator('[name="v.status"]')).to_have_count(0)
    page.get_by_label("nome", exact=True).fill("Zélia Quaresma")
    page.get_by_label("idade", exact=True).fill("30")
    page.get_by_label("turma", exact=True).fill("2")
    screenshot(page, "page-form")
    page.get_by_role("button", name="Create record").click()
    expect(page.get_by_role("status").first).to_have_text("Record created.")
    record_id = page.url.split("/records/", 1)[1].split("?", 1)[0]
    record = _api(backoffice, token, f"/api/v1/zstorage/tables/estudante/records/{record_id}")
    assert (record["status"], record["nota"], record["turma"]) == ("novo", 5, 2)
    expect(page.locator('[data-field="turma"] a')).to_have_text("#2 Turma B")

    # Edit, then find it with the search box and with the user filter.
    page.get_by_role("link", name="Edit").click()
    expect(page.locator('[data-current="turma"] a')).to_have_text("#2 Turma B")
    page.get_by_label("nome", exact=True).fill("Zélia Quaresma Lima")
    page.get_by_role("button", name="Save record").click()
    expect(page.get_by_role("status").first).to_have_text("Record saved.")
    record = _api(backoffice, token, f"/api/v1/zstorage/tables/estudante/records/{record_id}")
    assert (record["nome"], record["status"]) == ("Zélia Quaresma Lima", "novo")
    page.goto(BASE)
    page.get_by_label("Search").fill("Quaresma")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator('tbody [data-column="nome"]')).to_have_text("Zélia Quaresma Lima")
    page.goto(BASE)
    page.locator("summary", has_text="Filters").click()
    page.get_by_label("nome: condition").select_option("startswith")
    page.get_by_label("nome: value").fill("Zélia")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("tbody tr")).to_have_count(1)

    # The fixed filter holds: a record made too young leaves the page.
    page.goto(f"{BASE}/records/{record_id}/edit")
    page.get_by_label("idade", exact=True).fill("12")
    page.get_by_role("button", name="Save record").click()
    expect(page.get_by_role("status").first).to_contain_text("not on this page")
    page.get_by_label("Search").fill("Quaresma")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#summary")).to_have_text("No records match.")
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)

    # CSV export of the 10,000 records it shows, with progress, matching the list.
    page.goto(BASE)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    expect(page.locator("#export-progress")).to_contain_text("Exported 10,000 records.")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Id", "nome", "turma", "Anos"]
    assert len(rows) == ADULTS + 1
    listed = [
        [cell.strip() for cell in row.locator("th, td").all_inner_texts()]
        for row in page.locator("tbody tr").all()
    ]
    assert [[f"#{r[0]}", *r[1:]] for r in rows[1:51]] == listed
    page.goto(f"{BASE}?page=200")
    last = [
        [cell.strip() for cell in row.locator("th, td").all_inner_texts()]
        for row in page.locator("tbody tr").all()
    ]
    assert [[f"#{r[0]}", *r[1:]] for r in rows[-50:]] == last
    assert all(int(r[3]) >= 18 for r in rows[1:])
