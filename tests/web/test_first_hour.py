"""Issue 25's back-office fixes: every error at once, references by name, a test
message a worker can run, one heading per page."""

from __future__ import annotations

import html
import re

import httpx

from conveyor.platform import Platform
from conveyor.workers import WorkerInfo
from tests.web.helpers import csrf_of

PEOPLE = {
    "name": "people",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "age", "type": "integer"},
        {"name": "email", "type": "email", "unique": True},
        {"name": "code", "type": "text", "unique": True},
        {"name": "team", "type": "reference", "table": "teams"},
    ],
    "rules": [{"name": "adult", "expression": "record.age >= 18", "message": "adults only"}],
}


async def _tables(platform: Platform) -> None:
    await platform.storage.tables.create(
        {"name": "teams", "fields": [{"name": "title", "type": "text", "required": True}]}
    )
    await platform.storage.records.create("teams", {"title": "Platform <team>"})
    await platform.storage.tables.create(PEOPLE)
    await platform.storage.records.create(
        "people", {"name": "Ana", "age": 30, "email": "ana@example.com", "code": "A1", "team": 1}
    )


def _errors(html: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for field, message in re.findall(r'class="field-error" id="([\w-]+)-error">([^<]+)<', html):
        found.setdefault(field, []).append(message)
    return found


async def test_a_form_shows_rule_errors_and_unique_conflicts_together(
    platform: Platform, signed_in: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await _tables(platform)
    page = await signed_in.get("/admin/tables/people/records/new")
    form = {
        "csrf_token": csrf_of(page.text),
        "v.name": "Zé",
        "v.age": "15",
        "v.email": "ana@example.com",
        "v.code": "A1",
    }
    answer = await signed_in.post("/admin/tables/people/records/new", data=form)
    assert answer.status_code == 422
    assert "adults only" in answer.text
    assert _errors(answer.text) == {
        "email": ["a record with this email already exists"],
        "code": ["a record with this code already exists"],
    }
    assert len((await platform.storage.records.query("people", []))[0]) == 1  # none stored
    # Editing the record itself keeps its own values: no conflict with itself.
    edit = await signed_in.get("/admin/tables/people/records/1/edit")
    mine = {"csrf_token": csrf_of(edit.text), "v.name": "Ana", "v.age": "12",
            "v.email": "ana@example.com", "v.code": "A1", "v.team": "1"}  # fmt: skip
    edited = await signed_in.post("/admin/tables/people/records/1/edit", data=mine)
    assert edited.status_code == 422 and "adults only" in edited.text
    assert _errors(edited.text) == {}


async def test_the_api_lists_every_problem_of_a_write_in_one_422(
    platform: Platform, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await _tables(platform)
    answer = await client.post(
        "/api/v1/zstorage/tables/people/records",
        headers=admin,
        json={"name": "Zé", "age": 15, "email": "ana@example.com", "code": "A1"},
    )
    assert answer.status_code == 422
    details = answer.json()["error"]["details"]
    assert {(d["field"], d["rule"]) for d in details} == {
        (None, "adult"),
        ("email", "unique"),
        ("code", "unique"),
    }
    # Only a taken value: the unique index decides, a 409 as before.
    taken = await client.post(
        "/api/v1/zstorage/tables/people/records",
        headers=admin,
        json={"name": "Bo", "age": 40, "email": "ana@example.com"},
    )
    assert taken.status_code == 409


async def test_reference_fields_show_the_record_they_name_in_lists_and_forms(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await _tables(platform)
    link = '<a href="/admin/tables/teams/records/1">#1 Platform &lt;team&gt;</a>'
    listing = await signed_in.get("/admin/tables/people")
    assert f'<td data-label="team">{link}</td>' in listing.text
    edit = await signed_in.get("/admin/tables/people/records/1/edit")
    assert 'name="v.team" type="text" value="1"' in edit.text
    assert f'<p class="reference-label" id="team-label">{link}</p>' in edit.text
    # Texts without a long maximum are one line; none of these fields is a textarea.
    assert "<textarea" not in edit.text.split('class="record-fields"', 1)[1]


async def test_the_test_message_names_a_handler_the_queues_workers_have(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "mail", "type": "embedded"})
    before = await signed_in.get(f"/admin/queues/{queue.id}")
    assert '"handler": "test"' in html.unescape(before.text)
    assert "No worker of this queue is running now" in before.text
    assert "dead-letters at once a message for a handler it does not have" in before.text
    info = WorkerInfo("w1", "host", 1, "0", ["mail"], ["send_welcome", "send_bill"], 10, 10.0)
    await platform.workers.register(info)
    after = await signed_in.get(f"/admin/queues/{queue.id}")
    assert '"handler": "send_bill"' in html.unescape(after.text)
    assert "running workers have: <code>send_bill</code>, <code>send_welcome</code>" in after.text


async def test_pages_have_one_plain_heading(signed_in: httpx.AsyncClient) -> None:
    queues = await signed_in.get("/admin/queues")
    assert "<h1>Queues</h1>" in queues.text and "Administration" not in queues.text
    tables = await signed_in.get("/admin/tables")
    assert len(re.findall(r"<h[12][^>]*>Tables</h[12]>", tables.text)) == 1
