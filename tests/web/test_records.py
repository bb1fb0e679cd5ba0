"""Generated record pages over ASGI: forms built from the field types, every error next
to its field, the list's search, filters, sorting and pages, detail, edit, delete."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx

from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from tests.web.helpers import outbox_row, signed_in_token

CONTACTS = {
    "name": "contacts",
    "label": "Contacts",
    "fields": [
        {"name": "name", "type": "text", "required": True, "searchable": True, "max": 100},
        {"name": "age", "type": "integer", "min": 0},
        {"name": "email", "type": "email", "unique": True},
        {"name": "balance", "type": "decimal", "scale": 2},
        {"name": "vip", "type": "boolean", "required": True, "default": False},
        {"name": "newsletter", "type": "boolean"},
        {"name": "born", "type": "date"},
        {"name": "seen", "type": "datetime"},
        {"name": "meta", "type": "json", "default": {"tags": []}},
        {"name": "site", "type": "url"},
        {"name": "stage", "type": "select", "choices": ["lead", "customer"]},
        {"name": "company", "type": "reference", "table": "companies"},
        {"name": "notes", "type": "text", "max": 5000},
        {"name": "nickname", "type": "text"},
    ],
    "rules": [
        {"name": "adult", "expression": "!has(record.age) || record.age >= 18",
         "message": "contacts must be adults"},
    ],
}  # fmt: skip


def _field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'class="field-error" id="([\w-]+)-error">([^<]+)<', html))


def _general(html: str) -> list[str]:
    match = re.search(r'class="alert error" role="alert">\s*<ul>(.*?)</ul>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", match.group(1)) if match else []


def _ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-record="(\d+)"', html)]


async def _tables(platform: Platform) -> None:
    await platform.storage.tables.create(
        {"name": "companies", "fields": [{"name": "title", "type": "text", "required": True}]}
    )
    await platform.storage.records.create("companies", {"title": "Acme"})
    await platform.storage.tables.create(CONTACTS)


async def test_the_form_is_built_from_the_field_types(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await _tables(platform)
    page = await signed_in.get("/admin/tables/contacts/records/new")
    assert page.status_code == 200

    def tag(name: str) -> str:
        match = re.search(rf'<(input|textarea|select)[^>]*name="v\.{name}"[^>]*>', page.text)
        assert match, name
        return match.group(0)

    assert 'type="text"' in tag("name") and " required" in tag("name")
    assert 'type="number"' in tag("age") and 'step="1"' in tag("age")
    assert 'type="email"' in tag("email")
    assert 'inputmode="decimal"' in tag("balance")
    assert 'type="checkbox"' in tag("vip") and "checked" not in tag("vip")
    assert tag("newsletter").startswith("<select")  # yes / no / no value
    assert 'type="date"' in tag("born")
    assert 'type="datetime-local"' in tag("seen") and 'step="1"' in tag("seen")
    assert tag("meta").startswith("<textarea")
    assert "&#34;tags&#34;: []" in page.text or "&quot;tags&quot;: []" in page.text  # default
    assert 'type="url"' in tag("site")
    assert tag("stage").startswith("<select") and '<option value="customer">' in page.text
    assert 'data-picker="/admin/tables/companies/pick"' in tag("company")
    assert 'list="field-company-options"' in tag("company")
    assert tag("notes").startswith("<textarea")  # asks for long text (max > 255)
    assert tag("nickname").startswith('<input id="field-nickname" name="v.nickname" type="text"')
    assert '<label for="field-seen">seen' in page.text and "In UTC" in page.text

    picks = await signed_in.get("/admin/tables/companies/pick", params={"q": "acm"})
    assert re.search(r'<option value="1">#1 Acme</option>', picks.text)
    by_id = await signed_in.get("/admin/tables/companies/pick", params={"q": "1"})
    assert 'value="1"' in by_id.text
    none = await signed_in.get("/admin/tables/companies/pick", params={"q": "zzz"})
    assert "<option" not in none.text


async def test_every_error_shows_next_to_its_field_then_the_record_saves(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await _tables(platform)
    token = await signed_in_token(signed_in)
    url = "/admin/tables/contacts/records/new"
    form = {
        "csrf_token": token,
        "v.name": "",
        "v.age": "12",
        "v.email": "not-an-address",
        "v.balance": "1.234",
        "v.born": "2024-13-40",
        "v.meta": "{broken",
        "v.stage": "customer",
    }
    refused = await signed_in.post(url, data=form)
    assert refused.status_code == 422
    errors = _field_errors(refused.text)
    assert errors["name"] == "is required"
    assert "email address" in errors["email"]
    assert "decimal places" in errors["balance"]
    assert "valid date" in errors["born"]
    assert "not valid JSON" in errors["meta"]
    assert _general(refused.text) == ["contacts must be adults (rule adult)"]  # at the top
    assert 'aria-invalid="true" aria-describedby="email-hint email-error"' in refused.text
    assert 'value="not-an-address"' in refused.text and "{broken" in refused.text  # kept
    assert '<option value="customer" selected>' in refused.text

    # Problems only the write can find: a reference to no record, a duplicate value.
    await platform.storage.records.create("contacts", {"name": "Bo", "email": "bo@example.com"})
    fixed = form | {"v.name": "Ana", "v.age": "30", "v.balance": "1.25", "v.born": "1990-02-03",
                    "v.meta": '{"tags": ["x"]}', "v.email": "bo@example.com",
                    "v.company": "99"}  # fmt: skip
    refused = await signed_in.post(url, data=fixed)
    assert refused.status_code == 422
    assert "no record 99 in table &#39;companies&#39;" in _field_errors(refused.text)["company"]
    refused = await signed_in.post(url, data=fixed | {"v.company": "1"})
    assert refused.status_code == 422
    assert "already exists" in _field_errors(refused.text)["email"]

    created = await signed_in.post(
        url,
        data=fixed
        | {"v.company": "1", "v.email": "ana@example.com", "v.vip": "true",
           "v.newsletter": "false", "v.seen": "2024-05-06T07:08", "v.site": "https://a.example/"},
    )  # fmt: skip
    assert created.status_code == 303
    record_id = int(created.headers["location"].split("/records/")[1].split("?")[0])
    record = await platform.storage.records.get("contacts", record_id)
    assert record | {"created_at": None, "updated_at": None} == {
        "id": record_id,
        "created_at": None,
        "updated_at": None,
        "name": "Ana",
        "age": 30,
        "email": "ana@example.com",
        "balance": "1.25",
        "vip": True,
        "newsletter": False,
        "born": "1990-02-03",
        "seen": "2024-05-06T07:08:00+00:00",  # the form's time is UTC
        "meta": {"tags": ["x"]},
        "site": "https://a.example/",
        "stage": "customer",
        "company": 1,
        "notes": None,
        "nickname": None,
    }
    detail = await signed_in.get(created.headers["location"])
    assert "Record created." in detail.text
    assert 'href="/admin/tables/companies/records/1">#1 Acme</a>' in detail.text
    assert "2024-05-06 07:08:00 UTC" in detail.text

    # Leaving out a field with a default gives the default.
    plain = await signed_in.post(url, data={"csrf_token": token, "v.name": "Cy"})
    assert plain.status_code == 303
    (cy,) = (await platform.storage.records.query("contacts", [("name", "Cy")]))[0]
    assert cy["meta"] == {"tags": []} and cy["vip"] is False and cy["newsletter"] is None


async def test_list_search_filters_sorting_and_pages(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await _tables(platform)
    people = [{"name": f"Person {n:02d}", "age": 18 + n, "stage": "lead" if n % 2 else "customer"}
              for n in range(60)]  # fmt: skip
    people[7]["name"] = "Zoe Quark"
    await platform.storage.records.create_many("contacts", people)
    url = "/admin/tables/contacts"

    first = await signed_in.get(url)
    assert first.status_code == 200
    assert "Records 1\u201350 of 60" in first.text and _ids(first.text)[:2] == [1, 2]
    assert "Page 1 of 2" in first.text and 'rel="next"' in first.text
    second = await signed_in.get(url, params={"page": "2"})
    assert "Records 51\u201360 of 60" in second.text and _ids(second.text)[0] == 51
    small = await signed_in.get(url, params={"size": "25", "page": "3"})
    assert "Records 51\u201360 of 60" in small.text and "Page 3 of 3" in small.text

    found = await signed_in.get(url, params={"q": "quark"})
    assert _ids(found.text) == [8] and "search “quark”" in found.text

    # The records API's own syntax, and the filter form's pairs, mean the same.
    form = [("op.age", "gte"), ("v.age", "70"), ("op.stage", "eq"), ("v.stage", "lead")]
    form += [("op.name", "eq"), ("v.name", ""), ("sort", "id")]
    clean = await signed_in.get(url, params=form)
    assert clean.status_code == 303  # a URL to bookmark, in the records API's syntax
    assert clean.headers["location"] == f"{url}?age%5Bgte%5D=70&stage=lead&sort=id"
    for params in ([("age[gte]", "70"), ("stage", "lead")], form):
        filtered = await signed_in.get(url, params=params, follow_redirects=True)
        assert _ids(filtered.text) == [54, 56, 58, 60], params
        assert "age ≥ 70" in filtered.text and "stage is lead" in filtered.text
        assert 'href="/admin/tables/contacts?stage=lead' in filtered.text  # remove "age ≥ 70"
        assert '<option value="gte" selected>' in filtered.text  # the form shows the filter
    empty = await signed_in.get(url, params={"op.notes": "isnull"}, follow_redirects=True)
    assert len(_ids(empty.text)) == 50 and "notes is empty" in empty.text

    by_age = await signed_in.get(url, params={"sort": "-age"})
    assert _ids(by_age.text)[:3] == [60, 59, 58]
    header = by_age.text.split('aria-sort="descending"', 1)[1].split("</th>", 1)[0]
    assert 'href="/admin/tables/contacts?sort=age"' in header  # click again: ascending
    paged = await signed_in.get(url, params={"sort": "-age", "page": "2", "age[lt]": "100"})
    assert 'href="/admin/tables/contacts?age%5Blt%5D=100&amp;sort=-age"' in paged.text  # First

    for bad, words in (
        ({"nope": "1"}, "unknown field"),
        ({"age[contains]": "1"}, "unknown operator"),
        ({"age": "old"}, "must be an integer"),
        ({"sort": "(SELECT 1)"}, "cannot sort by"),
    ):
        refused = await signed_in.get(url, params=bad)
        assert refused.status_code == 400, bad
        assert words in refused.text and "<form" in refused.text  # the page, with its filters


async def test_edit_changes_only_what_changed(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await _tables(platform)
    record = await platform.storage.records.create(
        "contacts",
        {"name": "Ana", "age": 30, "seen": "2024-05-06T07:08:09.123456Z", "notes": "a\nb",
         "balance": "2.50", "newsletter": True},
    )  # fmt: skip
    token = await signed_in_token(signed_in)
    base = f"/admin/tables/contacts/records/{record['id']}"
    page = await signed_in.get(f"{base}/edit")
    assert 'value="2024-05-06T07:08:09.123"' in page.text  # what datetime-local can hold
    assert '<option value="true" selected>yes</option>' in page.text
    form = {
        "csrf_token": token,
        "v.name": "Ana",
        "v.age": "30",
        "v.seen": "2024-05-06T07:08:09.123",
        "v.notes": "a\r\nb",  # browsers send CRLF
        "v.balance": "2.50",
        "v.newsletter": "true",
        "v.meta": '{\r\n  "tags": []\r\n}',
    }
    same = await signed_in.post(f"{base}/edit", data=form)
    assert same.status_code == 303
    assert await platform.storage.records.get("contacts", record["id"]) == record  # untouched

    changed = await signed_in.post(
        f"{base}/edit", data=form | {"v.age": "31", "v.balance": "", "v.newsletter": ""}
    )
    assert changed.status_code == 303 and changed.headers["location"].endswith("notice=saved")
    after = await platform.storage.records.get("contacts", record["id"])
    assert (after["age"], after["balance"], after["newsletter"]) == (31, None, None)
    assert after["seen"] == record["seen"] and after["notes"] == "a\nb"

    young = await signed_in.post(f"{base}/edit", data=form | {"v.age": "3", "v.meta": "[1,"})
    assert young.status_code == 422
    assert "not valid JSON" in _field_errors(young.text)["meta"]
    assert _general(young.text) == ["contacts must be adults (rule adult)"]
    assert (await platform.storage.records.get("contacts", record["id"]))["age"] == 31

    assert (await signed_in.get(f"{base}9/edit")).status_code == 404
    assert (await signed_in.get("/admin/tables/contacts/records/abc")).status_code == 400


async def test_detail_shows_its_messages_and_retries_a_failed_one(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "contact-events", "type": "embedded"})
    await _tables(platform)
    await platform.links.put(
        "contacts", queue.id, LinkSpec.parse("contacts", {"events": ["create", "update"]})
    )
    record = await platform.storage.records.create("contacts", {"name": "Ana"})
    await platform.storage.records.update("contacts", record["id"], {"name": "Ana B"})
    failed = await outbox_row(platform, queue.id, "contacts", record["id"], error="queue down")
    base = f"/admin/tables/contacts/records/{record['id']}"
    page = await signed_in.get(base)
    assert page.status_code == 200
    rows = re.findall(
        r'data-outbox="(\d+)">\s*<th scope="row" data-label="Event">(\w+)<', page.text
    )
    assert [event for _, event in rows] == ["create", "update", "create"]
    assert page.text.count("status-sent") == 2 and "status-failed" in page.text
    assert "queue down" in page.text and "contact-events" in page.text

    token = await signed_in_token(signed_in)
    retried = await signed_in.post(
        f"/admin/outbox/{failed}/retry", data={"csrf_token": token, "next": base}
    )
    assert retried.status_code == 303 and retried.headers["location"] == f"{base}?notice=retried"
    assert (await platform.outbox.get(failed)).status.value in ("pending", "sent")
    again = await signed_in.get(retried.headers["location"])
    assert "The message is pending again" in again.text
    other = await outbox_row(platform, queue.id, "contacts", record["id"])
    elsewhere = await signed_in.post(
        f"/admin/outbox/{other}/retry", data={"csrf_token": token, "next": "https://evil.example/"}
    )
    assert elsewhere.headers["location"].startswith("/admin/")  # never off the site


async def test_delete_asks_first_and_respects_references(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await _tables(platform)
    record = await platform.storage.records.create("contacts", {"name": "Ana", "company": 1})
    token = await signed_in_token(signed_in)
    base = f"/admin/tables/contacts/records/{record['id']}"
    assert 'data-confirm="Delete record #1 of contacts?' in (await signed_in.get(base)).text

    used = await signed_in.post(
        "/admin/tables/companies/records/1/delete", data={"csrf_token": token}
    )
    assert used.status_code == 409 and "referenced by records" in used.text
    deleted = await signed_in.post(f"{base}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/admin/tables/contacts?notice=deleted"
    assert "Record deleted." in (await signed_in.get(deleted.headers["location"])).text
    assert (await signed_in.get(base)).status_code == 404
    assert (await platform.storage.records.query("contacts", []))[0] == []


async def test_values_read_well_in_the_list(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    await _tables(platform)
    await platform.storage.records.create(
        "contacts",
        {"name": "Ana", "vip": True, "company": 1, "balance": str(Decimal("12.5")),
         "seen": "2024-05-06T07:08:09Z", "site": "https://a.example/"},
    )  # fmt: skip
    page = await signed_in.get("/admin/tables/contacts")
    row = page.text.split('data-record="1"', 1)[1].split("</tr>", 1)[0]
    assert 'data-label="vip">yes<' in row and ">12.50<" in row
    # The list shows the first fields and every reference, which names its record
    # (the first text field) with a link; the rest are on the detail page.
    assert '<td data-label="company"><a href="/admin/tables/companies/records/1">#1 Acme</a>' in row
    assert 'data-label="seen"' not in row and 'data-label="Changed"' in row
    detail = await signed_in.get("/admin/tables/contacts/records/1")
    assert "2024-05-06 07:08:09 UTC" in detail.text
