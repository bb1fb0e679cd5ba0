"""Issue 25 in real Chromium: the pages a new user meets in their first hour, each fix
checked where the user sees it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from conveyor.platform import Platform
from conveyor.users import Role
from conveyor.workers import WorkerInfo
from tests.browser.conftest import BackOffice, run_async, screenshot, sign_in

pytestmark = pytest.mark.browser
ADULT = {"name": "adult", "expression": "record.age >= 18", "message": "adults only"}


def _setup(backoffice: BackOffice) -> str:
    async def work() -> str:
        async with Platform(backoffice.settings) as platform:
            await platform.storage.tables.create(
                {"name": "teams", "fields": [{"name": "title", "type": "text", "required": True}]}
            )
            await platform.storage.records.create("teams", {"title": "Platform team"})
            await platform.storage.tables.create(
                {
                    "name": "people",
                    "fields": [
                        {"name": "name", "type": "text", "required": True},
                        {"name": "age", "type": "integer"},
                        {"name": "email", "type": "email", "unique": True},
                        {"name": "code", "type": "text", "unique": True},
                        {"name": "team", "type": "reference", "table": "teams"},
                    ],
                    "rules": [
                        {
                            "name": "adult",
                            "expression": "record.age >= 18",
                            "message": "adults only",
                        },
                    ],
                }
            )
            await platform.storage.records.create(
                "people",
                {"name": "Ana", "age": 30, "email": "ana@example.com", "code": "A1", "team": 1},
            )
            queue = await platform.queues.create({"name": "mail", "type": "embedded"})
            await platform.workers.register(
                WorkerInfo("w-mail", "host", 1, "0", ["mail"], ["send_welcome"], 10, 3600.0)
            )
            await platform.users.create("olga", "a long passphrase for olga", Role.OPERATOR)
            return queue.id

    return run_async(work)


def test_the_first_hour_pages(page: Page, backoffice: BackOffice) -> None:
    queue_id = _setup(backoffice)
    sign_in(page)

    # Queues: titled like every other page; the test message names a handler the
    # queue's running worker has, and says what becomes of one it lacks.
    page.goto("/admin/queues")
    expect(page.get_by_role("heading", level=1)).to_have_text("Queues")
    page.goto(f"/admin/queues/{queue_id}")
    message = page.get_by_label("Message (a JSON object)")
    expect(message).to_have_value('{\n  "handler": "send_welcome",\n  "hello": "world"\n}')
    expect(page.locator("#message-hint")).to_contain_text("dead-letters at once")
    expect(page.locator("#message-hint")).to_contain_text("send_welcome")

    # Tables: one "Tables" heading.
    page.goto("/admin/tables")
    expect(page.get_by_role("heading", name="Tables", exact=True)).to_have_count(1)

    # The records list has the reference column: the team's title, linked.
    page.goto("/admin/tables/people")
    team = page.locator('td[data-label="team"] a')
    expect(team).to_have_text("#1 Platform team")
    expect(team).to_have_attribute("href", "/admin/tables/teams/records/1")
    # Times stay on one line.
    changed = page.locator('td[data-label="Changed"] .when').first
    assert changed.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
    screenshot(page, "records-reference-column")

    # A new record with a rule error and two taken unique values: all shown at once.
    page.goto("/admin/tables/people/records/new")
    assert page.locator(".record-fields textarea").count() == 0  # one-line text fields
    page.get_by_label("name", exact=True).fill("Zé")
    page.get_by_label("age", exact=True).fill("15")
    page.get_by_label("email", exact=True).fill("ana@example.com")
    page.get_by_label("code", exact=True).fill("A1")
    page.get_by_role("button", name="Create record").click()
    expect(page.get_by_role("alert")).to_contain_text("adults only")
    expect(page.locator("#email-error")).to_have_text("a record with this email already exists")
    expect(page.locator("#code-error")).to_have_text("a record with this code already exists")
    screenshot(page, "record-form-two-errors")

    # The edit form shows the record a reference names, not its id alone.
    page.goto("/admin/tables/people/records/1/edit")
    expect(page.locator("#team-label a")).to_have_text("#1 Platform team")
    page.locator("#team-label a").click()
    expect(page).to_have_url(f"{backoffice.base}/admin/tables/teams/records/1")


def test_the_api_reference_works_offline(page: Page, backoffice: BackOffice) -> None:
    outside: list[str] = []

    def only_the_server(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if request.url.startswith(backoffice.base):
            route.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(request.url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", only_the_server)
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Conveyor")
    expect(page.get_by_text("/api/v1/me", exact=True).first).to_be_visible()
    assert outside == []
    screenshot(page, "api-reference-offline")


def test_an_operator_has_no_api_keys_page(chromium: Browser, backoffice: BackOffice) -> None:
    context = chromium.new_context(base_url=backoffice.base)
    page = context.new_page()
    try:
        page.goto("/admin/")
        page.get_by_label("Username").fill("olga")
        page.get_by_label("Password").fill("a long passphrase for olga")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/admin/")
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Queues")).to_be_visible()
        expect(nav.get_by_role("link", name="API keys")).to_have_count(0)
        answer = page.goto("/admin/keys")
        assert answer is not None and answer.status == 403
        expect(page.get_by_role("main")).to_contain_text("only admins manage API keys")
    finally:
        context.close()
