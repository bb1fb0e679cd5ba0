"""The back-office in real headless Chromium, as an operator uses it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage, new_message_id, now_ms
from conveyor.worker.outcome import Counters
from conveyor.workers import WorkerInfo
from tests.browser.conftest import (
    PASSWORD,
    USERNAME,
    BackOffice,
    backoffice_on,
    run_async,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser


def _create_queue(page: Page, name: str) -> str:
    page.goto("/admin/queues/new")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create queue").click()
    page.wait_for_url(re.compile(r"/admin/queues/[0-9a-f]+\?notice=created$"))
    return page.url.split("/admin/queues/", 1)[1].split("?", 1)[0]


def _api_key(page: Page, name: str, *scopes: str) -> str:
    page.goto("/admin/keys")
    page.get_by_label("Name", exact=True).fill(name)
    for scope in scopes:
        page.get_by_label(scope, exact=True).check()
    page.get_by_role("button", name="Create key").click()
    return page.get_by_label("The new API key").input_value()


def _dead_letter(backoffice: BackOffice, queue_id: str, *bodies: bytes) -> None:
    async def work() -> None:
        async with Platform(backoffice.settings) as platform:
            backend = await platform.backends.connect(await platform.queues.get(queue_id))
            for body in bodies:
                await backend.publish(OutgoingMessage(body=body))
            for delivery in await backend.receive(len(bodies)):
                await backend.dead_letter(delivery, reason="handler raised: <b>boom</b>")

    run_async(work)


def test_sign_in_and_the_dashboard(page: Page) -> None:
    page.goto("/admin/queues")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/queues$"))
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    screenshot(page, "login")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/admin/queues$"))  # back where we were going
    page.get_by_role("link", name="Home").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    screenshot(page, "dashboard")
    page.goto("/admin/queues/no-such-queue")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    screenshot(page, "not-found")


def test_create_a_queue_publish_and_watch_the_counts(page: Page, backoffice: BackOffice) -> None:
    sign_in(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Queues").click()
    page.get_by_role("link", name="New queue").click()
    # Connection fields are hidden for an embedded queue and shown for a broker.
    expect(page.get_by_label("URL")).to_be_hidden()
    page.get_by_label("Type").select_option("rabbitmq")
    expect(page.get_by_label("URL")).to_be_visible()
    page.get_by_label("Type").select_option("embedded")
    # First an invalid name: the error shows next to the field, the rest is kept.
    page.get_by_label("Name", exact=True).fill("orders/../x")
    page.get_by_label("Description").fill("Orders from the <shop>")
    page.get_by_label("Max attempts").fill("0")
    page.get_by_role("button", name="Create queue").click()
    expect(page.locator("#name-error")).to_contain_text("invalid queue name")
    expect(page.locator("#options-max_attempts-error")).to_contain_text("greater than or equal")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Description")).to_have_value("Orders from the <shop>")
    screenshot(page, "queue-form-errors")
    page.get_by_label("Name", exact=True).fill("orders")
    page.get_by_label("Max attempts").fill("3")
    page.get_by_role("button", name="Create queue").click()
    expect(page.get_by_role("status").first).to_have_text("Queue created.")
    expect(page.get_by_text("Orders from the <shop>")).to_be_visible()
    queue_id = page.url.split("/admin/queues/", 1)[1].split("?", 1)[0]

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Max attempts")).to_have_value("3")
    screenshot(page, "queue-edit")
    page.get_by_label("Description").fill("Orders from the web shop")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_have_text("Queue saved.")
    expect(page.get_by_text("Orders from the web shop")).to_be_visible()

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#check-result")).to_contain_text("Connection OK")

    page.get_by_label("Message (a JSON object)").fill('{"handler": "test", "n": 1')
    expect(page.locator("[data-json-error]")).to_contain_text("Not valid JSON yet")
    page.get_by_label("Message (a JSON object)").fill('{"handler": "test", "n": 1}')
    expect(page.locator("[data-json-error]")).to_be_hidden()
    page.get_by_role("button", name="Publish").click()
    result = page.locator("#publish-result")
    expect(result).to_contain_text("Published.")
    message_id = result.locator('[data-id="message-id"]').inner_text()
    assert re.fullmatch(r"[0-9a-f-]{36}", message_id)
    expect(result.locator('[data-id="queue-id"]')).to_have_text(queue_id)
    expect(result.locator('[data-id="sqs-id"]')).to_have_text(re.compile(r"^\d+$"))
    screenshot(page, "queue-detail")

    # Live counts: a message published through the API shows up without a reload.
    ready = page.locator('#counts [data-count="ready"]')
    page.reload()
    expect(ready).to_have_text("1")
    token = _api_key_via_new_page(page, backoffice)
    page.goto(f"/admin/queues/{queue_id}")
    expect(ready).to_have_text("1")
    answer = httpx.post(
        backoffice.url(f"/api/v1/zstorage/queue/{queue_id}/publish"),
        headers={"Authorization": f"Bearer {token}"},
        json={"handler": "test", "n": 2},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    expect(ready).to_have_text("2", timeout=20_000)

    page.goto("/admin/queues")
    row = page.locator('tr[data-queue="orders"]')
    expect(row.locator('[data-label="Ready"]')).to_have_text("2")
    httpx.post(
        backoffice.url("/api/v1/zstorage/queue/a/orders/publish"),
        headers={"Authorization": f"Bearer {token}"},
        json={"handler": "test", "n": 3},
        timeout=10,
    ).raise_for_status()
    expect(row.locator('[data-label="Ready"]')).to_have_text("3", timeout=20_000)
    page.get_by_label("Type").select_option("kafka")  # the filter applies at once
    expect(page).to_have_url(re.compile(r"type=kafka"))
    expect(page.get_by_text("No kafka queues.")).to_be_visible()
    page.get_by_label("Type").select_option("")
    expect(row).to_be_visible()
    screenshot(page, "queues")


def _api_key_via_new_page(page: Page, backoffice: BackOffice) -> str:
    token = _api_key(page, "live-counts", "publish")
    assert token.startswith("cvk_")
    return token


def test_dead_letters_redrive_and_delete(page: Page, backoffice: BackOffice) -> None:
    sign_in(page)
    queue_id = _create_queue(page, "invoices")
    _dead_letter(
        backoffice,
        queue_id,
        b'{"handler": "bill", "n": 1, "note": "<script>alert(1)</script>"}',
        b'{"handler": "bill", "n": 2}',
        b'{"handler": "bill", "n": 3}',
    )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.goto(f"/admin/queues/{queue_id}")
    page.get_by_role("link", name="Dead letters").click()
    letters = page.locator(".letter")
    expect(letters).to_have_count(3)
    expect(letters.first).to_contain_text("<script>alert(1)</script>")  # shown as text
    expect(letters.first).to_contain_text("handler raised: <b>boom</b>")
    expect(letters.first).to_contain_text("1 attempt")
    screenshot(page, "dead-letters")

    letters.nth(0).get_by_role("button", name="Redrive").click()
    expect(page.get_by_role("status")).to_have_text("1 message(s) sent back to the queue.")
    expect(letters).to_have_count(2)
    letters.nth(0).get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("1 dead letter(s) deleted.")
    page.get_by_role("button", name="Redrive all").click()
    expect(page.get_by_role("status")).to_have_text("1 message(s) sent back to the queue.")
    expect(page.get_by_text("No dead letters")).to_be_visible()
    assert dialogs == [
        "Delete this dead letter for good?",
        "Send every dead letter of invoices back to the queue?",
    ]
    page.goto(f"/admin/queues/{queue_id}")
    expect(page.locator('#counts [data-count="ready"]')).to_have_text("2")
    expect(page.locator('#counts [data-count="dead"]')).to_have_text("0")


def test_api_key_shown_once_copied_used_and_revoked(page: Page, backoffice: BackOffice) -> None:
    sign_in(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.get_by_role("button", name="Create key").click()  # nothing filled in
    expect(page.locator("#name-error")).to_be_visible()
    expect(page.locator("#scopes-error")).to_contain_text("at least one scope")
    token = _api_key(page, "billing-service", "admin")
    expect(page.get_by_text("it is shown only once")).to_be_visible()
    copy = page.locator("button[data-copy]")  # its name changes to "Copied" when clicked
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    screenshot(page, "api-key-created")

    me = httpx.get(
        backoffice.url("/api/v1/me"), headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert me.status_code == 200 and me.json()["name"] == "billing-service"
    page.goto("/admin/keys")
    assert token not in page.content()  # once means once
    row = page.locator("tr", has_text="billing-service")
    expect(row).to_contain_text("_".join(token.split("_")[:2]))  # the prefix identifies it
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("API key revoked")
    expect(page.locator("tr", has_text="billing-service")).to_contain_text("revoked")
    me = httpx.get(
        backoffice.url("/api/v1/me"), headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert me.status_code == 401
    screenshot(page, "api-keys")


def test_sign_out(page: Page) -> None:
    sign_in(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto("/admin/keys")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/keys$"))


def test_keyboard_only_sign_in(page: Page) -> None:
    page.goto("/admin/login")
    expect(page.get_by_label("Username")).to_be_focused()  # ready to type
    page.keyboard.type(USERNAME)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator("#main a").first).to_be_focused()


@pytest.mark.postgres
def test_smoke_on_postgresql(chromium: Browser, tmp_path: Path) -> None:
    with backoffice_on("postgres", tmp_path) as backoffice:
        context = chromium.new_context(base_url=backoffice.base)
        context.set_default_timeout(20_000)
        page = context.new_page()
        try:
            sign_in(page)
            queue_id = _create_queue(page, "pg-orders")
            page.get_by_role("button", name="Publish").click()
            result = page.locator("#publish-result")
            expect(result.locator('[data-id="queue-id"]')).to_have_text(queue_id)
            token = _api_key(page, "pg-admin", "admin")
            stats = httpx.get(
                backoffice.url(f"/api/v1/zstorage/queues/{queue_id}/stats"),
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert stats.json()["ready"] == 1
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("status")).to_have_text("You are signed out.")
        finally:
            context.close()


def _platform_work(backoffice: BackOffice, work: Callable[[Platform], Awaitable[None]]) -> None:
    async def run() -> None:
        async with Platform(backoffice.settings) as platform:
            await work(platform)

    run_async(run)


def _add_field(page: Page, name: str, kind: str, **options: str) -> None:
    page.get_by_role("link", name="Add a field").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Type").select_option(kind)
    for label, value in options.items():
        target = page.get_by_label(label.replace("_", " "), exact=True)
        if value == "on":
            target.check()
        else:
            target.fill(value)
    page.get_by_role("button", name="Add field").click()
    expect(page.get_by_role("status").first).to_have_text("Field added.")


def test_tables_designer_and_record_pages(page: Page, backoffice: BackOffice) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    sign_in(page)
    _create_queue(page, "contact-events")

    # A table with three field types and a rule.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tables").click()
    page.get_by_label("Name", exact=True).fill("contacts")
    page.get_by_label("Label").fill("Contacts")
    page.get_by_role("button", name="Create table").click()
    expect(page.get_by_role("status").first).to_have_text("Table created. Add its fields below.")
    _add_field(page, "name", "text", Required="on", Searchable="on", Maximum="100")
    page.get_by_role("link", name="Add a field").click()
    # The form shows the options of the chosen type only.
    expect(page.get_by_label("Choices")).to_be_hidden()
    page.get_by_label("Type").select_option("select")
    expect(page.get_by_label("Choices")).to_be_visible()
    expect(page.get_by_label("Pattern")).to_be_hidden()
    page.get_by_label("Name", exact=True).fill("stage")
    page.get_by_label("Choices").fill("lead\ncustomer")
    screenshot(page, "field-form")
    page.get_by_role("button", name="Add field").click()
    expect(page.get_by_role("status").first).to_have_text("Field added.")
    _add_field(page, "age", "integer", Minimum="0")
    expect(page.locator('tr[data-field="age"]')).to_contain_text("min 0")

    # The rule is checked against the sample record as it is typed.
    expression = page.get_by_label("Expression")
    expression.fill("record.age >=")
    expect(page.locator("#rule-check")).to_contain_text("syntax error at line 1, column 14")
    expression.fill("record.age >= 18")
    expect(page.locator("#rule-check")).to_contain_text("The sample breaks this rule")
    page.get_by_label("Sample record to check it against (JSON)").fill('{"age": 40}')
    expect(page.locator("#rule-check")).to_contain_text("The sample passes this rule.")
    page.get_by_label("Rule name").fill("adult")
    page.get_by_label("Message when broken").fill("contacts must be adults")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status").first).to_contain_text("Rule added")
    page.get_by_label("Queue", exact=True).select_option(label="contact-events (embedded)")
    page.get_by_role("button", name="Save link").click()
    expect(page.locator('tr[data-link="contact-events"]')).to_contain_text("contacts_changed")
    screenshot(page, "table-designer")

    # A record with an invalid value: the error shows next to its field.
    page.get_by_role("link", name="Records").click()
    expect(page.get_by_text("No records yet.")).to_be_visible()
    page.get_by_role("link", name="New record").click()
    page.get_by_label("name", exact=True).fill("Ana Lima <b>")
    page.get_by_label("age", exact=True).fill("-5")
    page.get_by_label("stage", exact=True).select_option("customer")
    page.get_by_role("button", name="Create record").click()
    expect(page.locator("#age-error")).to_have_text("must be at least 0")
    expect(page.get_by_label("age", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("name", exact=True)).to_have_value("Ana Lima <b>")
    page.get_by_label("age", exact=True).fill("12")
    page.get_by_role("button", name="Create record").click()
    expect(page.get_by_role("alert")).to_contain_text("contacts must be adults (rule adult)")
    screenshot(page, "record-form-errors")
    page.get_by_label("age", exact=True).fill("34")
    page.get_by_role("button", name="Create record").click()
    expect(page.get_by_role("status").first).to_have_text("Record created.")
    messages = page.locator("[data-outbox]")
    expect(messages).to_have_count(1)
    expect(messages.first).to_contain_text("sent")
    screenshot(page, "record-detail")

    # It is in the list; the search finds it and only it.
    _platform_work(
        backoffice,
        lambda p: p.storage.records.create("contacts", {"name": "Bruno Costa", "age": 51}),
    )
    page.get_by_role("link", name="contacts", exact=True).click()
    rows = page.locator("tr[data-record]")
    expect(rows).to_have_count(2)
    page.get_by_label("Search").fill("ana")
    page.get_by_label("Search").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Ana Lima <b>")
    page.get_by_role("link", name="Remove the search").click()
    expect(rows).to_have_count(2)
    page.locator('a.sort[href$="sort=age"]').click()  # the column header
    expect(page.locator('th[aria-sort="ascending"]')).to_contain_text("age")
    expect(rows.first).to_contain_text("Ana Lima")
    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("age: condition", exact=True).select_option("gte")
    page.get_by_label("age: value", exact=True).fill("50")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Bruno Costa")
    expect(page).to_have_url(re.compile(r"age%5Bgte%5D=50"))
    screenshot(page, "records")

    # A reference field: its picker suggests records as you type.
    page.get_by_role("link", name="Design").click()
    page.get_by_role("link", name="Add a field").click()
    page.get_by_label("Name", exact=True).fill("referrer")
    page.get_by_label("Type").select_option("reference")
    page.get_by_label("Refers to table").select_option("contacts")
    page.get_by_label("When the referenced record is deleted").select_option("set_null")
    page.get_by_role("button", name="Add field").click()
    expect(page.locator('tr[data-field="referrer"]')).to_contain_text("→ contacts")

    # Edit, then delete (after confirming).
    page.get_by_role("link", name="Records").click()
    page.locator("tr", has_text="Ana Lima").get_by_role("link").first.click()
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("age", exact=True).fill("35")
    page.get_by_label("referrer", exact=True).fill("bru")
    expect(page.locator("#field-referrer-options option")).to_have_text(["#2 Bruno Costa"])
    page.get_by_label("referrer", exact=True).fill("2")
    screenshot(page, "record-edit")
    page.get_by_role("button", name="Save record").click()
    expect(page.get_by_role("status").first).to_have_text("Record saved.")
    expect(page.locator('[data-field="age"] dd')).to_have_text("35")
    expect(page.locator('[data-field="referrer"] a')).to_have_text("#2 Bruno Costa")
    expect(messages).to_have_count(2)
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").first).to_have_text("Record deleted.")
    expect(rows).to_have_count(1)
    assert dialogs[-1].startswith("Delete record #1 of contacts?")


def test_workers_outbox_and_dashboard(page: Page, backoffice: BackOffice) -> None:
    sign_in(page)
    queue_id = _create_queue(page, "billing")
    counters = Counters(acked=7)

    async def start(platform: Platform) -> None:
        await platform.workers.register(
            WorkerInfo("w-browser", "host-7", 77, "0.1.0", ["billing"], ["bill"], 4, 5.0)
        )
        await platform.storage.tables.create({"name": "invoices"})
        async with platform.db.write() as conn:
            await platform.outbox.add(conn, [_failed_row(queue_id)])

    _platform_work(backoffice, start)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workers").click()
    row = page.locator('tr[data-worker="w-browser"]')
    expect(row).to_contain_text("running")
    expect(row.locator('[data-label="Processed"]')).to_have_text("0")
    # The list refreshes by itself.
    _platform_work(backoffice, lambda p: p.workers.beat("w-browser", counters))
    expect(row.locator('[data-label="Processed"]')).to_have_text("7", timeout=20_000)
    screenshot(page, "workers")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    failed = page.locator("tr[data-outbox]", has_text="failed")
    expect(failed).to_contain_text("broker refused")
    screenshot(page, "outbox")
    failed.get_by_role("button", name=re.compile("Retry")).click()
    expect(page.get_by_role("status").first).to_contain_text("pending again")

    tables: list[int] = []

    async def count(platform: Platform) -> None:
        tables.append(len(await platform.storage.tables.list()))

    _platform_work(backoffice, count)  # other tests of the module add theirs
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Home").click()
    expect(page.locator(".tile", has_text="tables")).to_have_text(f"{tables[0]} tables")
    expect(page.locator(".tile", has_text="running")).to_have_text("1 worker running")
    screenshot(page, "dashboard-areas")


def _failed_row(queue_id: str) -> dict[str, object]:
    return {
        "queue_id": queue_id,
        "table_name": "invoices",
        "record_id": "1",
        "event": "create",
        "message_id": new_message_id(),
        "ordering_key": "invoices:1",
        "payload": "{}",
        "status": "failed",
        "attempts": 5,
        "next_attempt_at": now_ms(),
        "last_error": "broker refused the message",
        "created_at": now_ms(),
    }
