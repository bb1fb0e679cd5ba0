"""The back-office in real headless Chromium, as an operator uses it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage
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
