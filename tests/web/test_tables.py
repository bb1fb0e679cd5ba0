"""The tables list and the designer over ASGI: fields of every type and option, rules
with the live check, links to queues, settings, deleting."""

from __future__ import annotations

import re

import httpx

from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from conveyor.storage.fields import FieldType
from tests.web.helpers import signed_in_token


def _field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'class="field-error" id="([\w-]+)-error">([^<]+)<', html))


def _alert(html: str) -> str:
    match = re.search(r'class="alert error" role="alert">(.*?)</(?:p|div)>', html, re.S)
    return match.group(1) if match else ""


async def test_create_a_table_with_inline_errors(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    token = await signed_in_token(signed_in)
    empty = await signed_in.get("/admin/tables")
    assert empty.status_code == 200 and "No tables yet" in empty.text
    for name, words in (("Bad Name", "invalid table name"), ("select", "reserved word")):
        refused = await signed_in.post(
            "/admin/tables", data={"csrf_token": token, "name": name, "label": "Contacts"}
        )
        assert refused.status_code == 422
        assert words in _field_errors(refused.text)["name"]
        assert 'value="Contacts"' in refused.text  # what was typed stays
    assert await platform.storage.tables.list() == []

    form = {"csrf_token": token, "name": "contacts", "label": "Contacts", "description": "People"}
    created = await signed_in.post("/admin/tables", data=form)
    assert created.status_code == 303
    assert created.headers["location"] == "/admin/tables/contacts/design?notice=created"
    (table,) = await platform.storage.tables.list()
    assert (table.name, table.label, table.description) == ("contacts", "Contacts", "People")
    design = await signed_in.get(created.headers["location"])
    assert "Table created." in design.text and "No fields yet" in design.text

    again = await signed_in.post("/admin/tables", data=form)
    assert again.status_code == 422 and "already exists" in _field_errors(again.text)["name"]

    await platform.storage.records.create("contacts", {})
    listing = await signed_in.get("/admin/tables")
    row = listing.text.split('data-table="contacts"', 1)[1].split("</tr>", 1)[0]
    assert 'data-label="Records">1<' in row and 'href="/admin/tables/contacts"' in listing.text


async def test_fields_of_every_type_and_option(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await platform.storage.tables.create({"name": "companies"})
    await platform.storage.tables.create({"name": "contacts"})
    token = await signed_in_token(signed_in)
    page = await signed_in.get("/admin/tables/contacts/fields/new")
    assert page.status_code == 200
    for kind in FieldType:
        assert f'<option value="{kind.value}"' in page.text
    assert 'data-types="decimal"' in page.text  # precision and scale only for decimals
    assert '<option value="companies">' in page.text  # reference targets

    url = "/admin/tables/contacts/fields/new"
    specs = [
        {"name": "name", "type": "text", "label": "Full name", "required": "1",
         "searchable": "1", "min": "2", "max": "100", "pattern": "[A-Z].*"},
        {"name": "age", "type": "integer", "min": "0", "max": "150", "indexed": "1",
         "default": "30"},
        {"name": "balance", "type": "decimal", "precision": "10", "scale": "2",
         "min": "-5.5", "default": "0.00"},
        {"name": "vip", "type": "boolean", "required": "1", "default": "false"},
        {"name": "born", "type": "date", "indexed": "1"},
        {"name": "seen", "type": "datetime"},
        {"name": "meta", "type": "json", "default": '{"tags": []}'},
        {"name": "email", "type": "email", "unique": "1", "searchable": "1"},
        {"name": "site", "type": "url", "max": "300"},
        {"name": "stage", "type": "select", "choices": "lead\ncustomer\n", "default": "lead"},
        {"name": "company", "type": "reference", "table": "companies",
         "on_delete": "set_null"},
    ]  # fmt: skip
    for spec in specs:
        # Options of other types, still in the form while the type changed, are ignored.
        response = await signed_in.post(url, data={"csrf_token": token, "scale": "", **spec})
        assert response.status_code == 303, (spec["name"], _field_errors(response.text))
    table = await platform.storage.tables.get("contacts")
    fields = table.field_map
    assert [f.name for f in table.fields] == [s["name"] for s in specs]
    name = fields["name"]
    assert (name.label, name.required, name.searchable, name.min, name.max, name.pattern) == (
        "Full name", True, True, 2, 100, "[A-Z].*"
    )  # fmt: skip
    assert (fields["age"].min, fields["age"].default, fields["age"].indexed) == (0, 30, True)
    assert (fields["balance"].precision, fields["balance"].scale) == (10, 2)
    assert fields["balance"].min == "-5.5" and fields["balance"].default == "0.00"
    assert fields["vip"].default is False and fields["vip"].required
    assert fields["meta"].default == {"tags": []}
    assert fields["email"].unique and fields["stage"].choices == ("lead", "customer")
    assert (fields["company"].table, fields["company"].on_delete) == ("companies", "set_null")

    design = await signed_in.get("/admin/tables/contacts/design")
    row = design.text.split('data-field="stage"', 1)[1].split("</tr>", 1)[0]
    assert "choices: lead, customer" in row and "default lead" in row
    assert "→ companies (on delete set_null)" in design.text


async def test_field_errors_show_next_to_their_option(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    fields = [{"name": "name", "type": "text"}]
    await platform.storage.tables.create({"name": "contacts", "fields": fields})
    token = await signed_in_token(signed_in)
    url = "/admin/tables/contacts/fields/new"
    cases = [
        ({"name": "Bad", "type": "text"}, "name", "invalid field name"),
        ({"name": "stage", "type": "select"}, "choices", "non-empty list of choices"),
        ({"name": "age", "type": "integer", "min": "5", "max": "1"}, "min", "not be greater"),
        ({"name": "age", "type": "integer", "default": "old"}, "default", "must be an integer"),
        ({"name": "meta", "type": "json", "default": "{nope"}, "default", "not valid JSON"),
        ({"name": "code", "type": "text", "pattern": "[a-"}, "pattern", "invalid regular"),
        ({"name": "boss", "type": "reference", "table": "people"}, "table", "no table named"),
        ({"name": "price", "type": "decimal", "precision": "40"}, "precision", "from 1 to 18"),
        ({"name": "name", "type": "text"}, "name", "already has a field named"),
    ]
    for spec, field, words in cases:
        response = await signed_in.post(url, data={"csrf_token": token, **spec})
        assert response.status_code == 422, spec
        errors = _field_errors(response.text)
        assert words in errors.get(field, ""), (spec, errors, _alert(response.text))
        assert f'value="{spec["type"]}" selected' in response.text  # the type is kept
    assert [f.name for f in (await platform.storage.tables.get("contacts")).fields] == ["name"]


async def test_edit_rename_and_delete_a_field(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await platform.storage.tables.create(
        {
            "name": "contacts",
            "fields": [
                {"name": "name", "type": "text", "max": 50, "searchable": True},
                {"name": "nick", "type": "text"},
            ],
        }
    )
    await platform.storage.records.create("contacts", {"name": "Ana", "nick": "A"})
    token = await signed_in_token(signed_in)
    edit = await signed_in.get("/admin/tables/contacts/fields/name/edit")
    assert edit.status_code == 200 and 'value="50"' in edit.text
    assert 'name="searchable" value="1" checked' in edit.text

    url = "/admin/tables/contacts/fields/name/edit"
    form = {"csrf_token": token, "name": "full_name", "type": "text", "label": "Full name",
            "searchable": "1", "max": ""}  # fmt: skip
    saved = await signed_in.post(url, data=form)
    assert saved.status_code == 303, _field_errors(saved.text) or _alert(saved.text)
    field = (await platform.storage.tables.get("contacts")).field("full_name")
    assert (field.label, field.max, field.searchable) == ("Full name", None, True)
    assert (await platform.storage.records.get("contacts", 1))["full_name"] == "Ana"

    refused = await signed_in.post(
        "/admin/tables/contacts/fields/full_name/edit",
        data=form | {"name": "full_name", "type": "integer"},
    )
    assert refused.status_code == 422
    assert "cannot change" in _alert(refused.text) or "refuse" in _alert(refused.text)

    kept = await signed_in.post(
        "/admin/tables/contacts/fields/nick/delete", data={"csrf_token": token}
    )
    assert kept.status_code == 409
    assert "1 records have a value for &#39;nick&#39;. To delete anyway, tick" in kept.text
    gone = await signed_in.post(
        "/admin/tables/contacts/fields/nick/delete", data={"csrf_token": token, "force": "1"}
    )
    assert gone.status_code == 303
    assert [f.name for f in (await platform.storage.tables.get("contacts")).fields] == ["full_name"]
    missing = await signed_in.get("/admin/tables/contacts/fields/nick/edit")
    assert missing.status_code == 404


async def test_rules_check_add_and_delete(platform: Platform, signed_in: httpx.AsyncClient) -> None:
    await platform.storage.tables.create(
        {"name": "people", "fields": [{"name": "age", "type": "integer"},
                                      {"name": "born", "type": "date"}]}
    )  # fmt: skip
    token = await signed_in_token(signed_in)
    design = await signed_in.get("/admin/tables/people/design")
    assert "&#34;age&#34;: 1" in design.text or "&quot;age&quot;: 1" in design.text  # a sample

    async def check(expression: str, sample: str, message: str = "too young") -> str:
        response = await signed_in.post(
            "/admin/tables/people/rules/check",
            data={"csrf_token": token, "expression": expression, "sample": sample,
                  "message": message},
            headers={"X-Partial": "1"},
        )  # fmt: skip
        assert response.status_code == 200 and "<html" not in response.text
        return response.text

    assert "passes" in await check("record.age >= 18", '{"age": 20}')
    broken = await check("record.age >= 18", '{"age": 12}')
    assert "breaks this rule: too young" in broken
    assert "syntax error at line 1, column 14" in await check("record.age >=", "{}")
    unknown = await check("record.agee > 1", "{}")
    assert "unknown field &#39;agee&#39; at line 1, column 8" in unknown
    assert "not valid JSON" in await check("record.age > 1", "{nope")
    dates = await check('record.born < timestamp("2000-01-01T00:00:00Z")', '{"born": "1990-05-01"}')
    assert "passes" in dates
    typed = await check("record.age > 1", '{"age": "old"}')
    assert "sample: age: must be an integer" in typed

    # Without JavaScript the button posts the whole form and the page shows the result.
    whole = await signed_in.post(
        "/admin/tables/people/rules/check",
        data={"csrf_token": token, "name": "adult", "expression": "record.age >= 18",
              "sample": '{"age": 3}', "message": "adults only"},
    )  # fmt: skip
    assert whole.status_code == 200 and "breaks this rule: adults only" in whole.text
    assert 'value="adult"' in whole.text  # what was typed stays

    bad = await signed_in.post(
        "/admin/tables/people/rules",
        data={"csrf_token": token, "name": "adult", "expression": "record.age >=", "message": "x"},
    )
    assert bad.status_code == 422
    assert "syntax error at line 1" in _field_errors(bad.text)["expression"]
    added = await signed_in.post(
        "/admin/tables/people/rules",
        data={"csrf_token": token, "name": "adult", "expression": "record.age >= 18",
              "message": "adults only"},
    )  # fmt: skip
    assert added.status_code == 303
    (rule,) = (await platform.storage.tables.get("people")).rules
    assert (rule.rule.expression, rule.rule.message) == ("record.age >= 18", "adults only")
    twice = await signed_in.post(
        "/admin/tables/people/rules",
        data={"csrf_token": token, "name": "adult", "expression": "true"},
    )
    assert twice.status_code == 422 and "already has a rule" in _field_errors(twice.text)["name"]

    deleted = await signed_in.post(
        "/admin/tables/people/rules/adult/delete", data={"csrf_token": token}
    )
    assert deleted.status_code == 303
    assert (await platform.storage.tables.get("people")).rules == ()


async def test_link_to_a_queue_and_remove_it(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "contact-events", "type": "embedded"})
    await platform.storage.tables.create({"name": "contacts"})
    token = await signed_in_token(signed_in)
    design = await signed_in.get("/admin/tables/contacts/design")
    assert 'value="contacts_changed"' in design.text  # the default handler
    url = "/admin/tables/contacts/links"
    refused = await signed_in.post(
        url, data={"csrf_token": token, "queue": "", "handler": "bad handler!", "mode": "sync"}
    )
    assert refused.status_code == 422
    assert "choose a queue" in _field_errors(refused.text)["queue"]
    refused = await signed_in.post(
        url, data={"csrf_token": token, "queue": queue.id, "handler": "bad handler!"}
    )
    errors = _field_errors(refused.text)
    assert "letters, digits" in errors["handler"] and "non-empty list" in errors["events"]

    form = {"csrf_token": token, "queue": queue.id, "events": ["create", "delete"],
            "handler": "sync_contact", "mode": "sync"}  # fmt: skip
    saved = await signed_in.post(url, data=form)
    assert saved.status_code == 303
    (link,) = await platform.links.all("contacts")
    assert (sorted(link.events), link.handler, link.mode.value) == (
        ["create", "delete"], "sync_contact", "sync"
    )  # fmt: skip
    design = await signed_in.get("/admin/tables/contacts/design")
    row = design.text.split('data-link="contact-events"', 1)[1].split("</tr>", 1)[0]
    assert "sync_contact" in row and ">create<" in row and ">update<" not in row

    await platform.storage.records.create("contacts", {})
    assert (await (await platform.backends.get(queue)).stats()).ready == 1

    removed = await signed_in.post(
        f"/admin/tables/contacts/links/{queue.id}/delete", data={"csrf_token": token}
    )
    assert removed.status_code == 303 and await platform.links.all("contacts") == []


async def test_settings_and_deleting_a_table(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "events", "type": "embedded"})
    await platform.storage.tables.create({"name": "notes", "label": "Notes"})
    await platform.links.put("notes", queue.id, LinkSpec.parse("notes", {}))
    await platform.storage.records.create("notes", {})
    token = await signed_in_token(signed_in)
    saved = await signed_in.post(
        "/admin/tables/notes/design",
        data={"csrf_token": token, "label": "Team notes", "description": "Shared"},
    )
    assert saved.status_code == 303
    table = await platform.storage.tables.get("notes")
    assert (table.label, table.description) == ("Team notes", "Shared")
    too_long = await signed_in.post(
        "/admin/tables/notes/design", data={"csrf_token": token, "label": "x" * 300}
    )
    assert too_long.status_code == 422 and "at most 200" in _field_errors(too_long.text)["label"]

    held = await signed_in.post("/admin/tables/notes/delete", data={"csrf_token": token})
    assert held.status_code == 409
    assert "holds 1 records. To delete anyway, tick “also delete the records" in held.text
    deleted = await signed_in.post(
        "/admin/tables/notes/delete", data={"csrf_token": token, "force": "1"}
    )
    assert deleted.status_code == 303 and deleted.headers["location"].endswith("notice=deleted")
    assert await platform.storage.tables.list() == []
    assert await platform.links.all("notes") == []
    assert (await signed_in.get("/admin/tables/notes/design")).status_code == 404
