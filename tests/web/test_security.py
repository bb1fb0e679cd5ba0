"""Back-office security: CSRF, cookies, sessions, API keys refused, escaping, throttling."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import orjson
import pytest
from fastapi.routing import APIRoute

from conveyor import logins as throttle_module
from conveyor import sessions as sessions_module
from conveyor.db.types import utcnow
from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage
from conveyor.web.app import VIEWS
from conveyor.workers import WorkerInfo
from tests.conftest import bearer
from tests.web.helpers import (
    ESCAPED_XSS,
    PASSWORD,
    XSS,
    csrf_of,
    login,
    outbox_row,
    signed_in_token,
    web_client,
)


def _admin_post_paths() -> list[str]:
    return sorted(
        "/admin" + route.path
        for view in VIEWS
        for route in view.router.routes
        if isinstance(route, APIRoute) and "POST" in route.methods
    )


async def _everything(platform: Platform) -> dict[str, str]:
    """One of each thing a POST route can change, by its path parameter."""
    queue = await platform.queues.create({"name": "orders", "type": "embedded"})
    key, _ = await platform.keys.create("svc", ["publish"])
    await platform.storage.tables.create(
        {
            "name": "contacts",
            "fields": [{"name": "name", "type": "text"}],
            "rules": [{"name": "named", "expression": "has(record.name)", "message": "x"}],
        }
    )
    await platform.links.put(
        "contacts", queue.id, LinkSpec.parse("contacts", {"events": ["create", "update"]})
    )
    record = await platform.storage.records.create("contacts", {"name": "Ana"})
    (row,) = await platform.outbox.page(table_name="contacts")
    await platform.storage.pages.create("contacts", {"slug": "all", "title": "All"})
    return {
        "{slug}": "all",
        "{queue_id}": queue.id,
        "{keyid}": key.id,
        "{table}": "contacts",
        "{field}": "name",
        "{rule}": "named",
        "{record_id}": str(record["id"]),
        "{row_id}": str(row.id),
    }


async def test_every_post_without_or_with_a_wrong_csrf_token_is_refused(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    ids = await _everything(platform)
    paths = _admin_post_paths()
    # Every state-changing page is covered; a new one shows up here by itself.
    assert len(paths) >= 25
    form = {
        "name": "x",
        "type": "embedded",
        "message": "{}",
        "scopes": "admin",
        "force": "1",
        "expression": "true",
        "events": "create",
        "v.name": "changed",
        "label": "changed",
    }
    for template in paths:
        path = template
        for placeholder, value in ids.items():
            path = path.replace(placeholder, value)
        assert "{" not in path, f"give {template} a value for its parameter"
        for token in (None, "wrong-token"):
            data = form | ({"csrf_token": token} if token else {})
            response = await signed_in.post(path, data=data)
            assert response.status_code == 403, (path, token, response.status_code)
            assert "did not come from this site" in response.text
    # Nothing happened: the queue, key, table, record and link are intact.
    assert (await platform.queues.get(ids["{queue_id}"])).name == "orders"
    assert not (await platform.keys.get(ids["{keyid}"])).revoked
    assert [q.name for q in await platform.queues.list()] == ["orders"]
    stats = await (
        await platform.backends.get(await platform.queues.get(ids["{queue_id}"]))
    ).stats()
    assert stats.ready == 1  # the record's creation, nothing more
    (table,) = await platform.storage.tables.list()
    assert (table.name, table.label, [f.name for f in table.fields]) == (
        "contacts",
        "contacts",
        ["name"],
    )
    assert [r.rule.name for r in table.rules] == ["named"]
    record = await platform.storage.records.get("contacts", int(ids["{record_id}"]))
    assert record["name"] == "Ana"
    assert len(await platform.links.all("contacts")) == 1
    assert len(await platform.outbox.page()) == 1
    assert [p.page.title for p in await platform.storage.pages.all("contacts")] == ["All"]
    assert table.display_field is None


async def test_the_login_form_needs_its_csrf_token_too(
    browser: httpx.AsyncClient, operator: str
) -> None:
    await browser.get("/admin/login")  # sets the login cookie
    response = await browser.post("/admin/login", data={"username": operator, "password": PASSWORD})
    assert response.status_code == 403
    assert "conveyor_session" not in response.headers.get("set-cookie", "")


async def test_the_header_token_is_accepted_for_script_requests(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "orders", "type": "embedded"})
    token = await signed_in_token(signed_in)
    response = await signed_in.post(
        f"/admin/queues/{queue.id}/check", headers={"X-CSRF-Token": token, "X-Partial": "1"}
    )
    assert response.status_code == 200
    assert "Connection OK" in response.text


def _admin_get_paths() -> set[str]:
    return {
        "/admin" + route.path
        for view in VIEWS
        for route in view.router.routes
        if isinstance(route, APIRoute) and "GET" in route.methods
    }


async def test_no_state_changes_on_get(platform: Platform, signed_in: httpx.AsyncClient) -> None:
    ids = await _everything(platform)
    post_only = [p for p in _admin_post_paths() if p not in _admin_get_paths()]
    assert "/admin/logout" in post_only and len(post_only) >= 12
    for template in post_only:
        path = template
        for placeholder, value in ids.items():
            path = path.replace(placeholder, value)
        response = await signed_in.get(path)
        # 405, or a page that happens to live at that address (a table named "rules"…)
        assert response.status_code in (404, 405), (path, response.status_code)
    assert (await platform.queues.get(ids["{queue_id}"])).name == "orders"
    assert not (await platform.keys.get(ids["{keyid}"])).revoked
    (table,) = await platform.storage.tables.list()
    assert [f.name for f in table.fields] == ["name"] and len(table.rules) == 1
    assert await platform.storage.records.get("contacts", int(ids["{record_id}"]))
    assert len(await platform.links.all("contacts")) == 1
    assert (await signed_in.get("/admin/keys")).status_code == 200  # still signed in


def _cookie(response: httpx.Response, name: str) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


async def test_session_cookie_flags(platform: Platform, operator: str) -> None:
    async with web_client(platform) as client:
        cookie = _cookie(await login(client), "conveyor_session")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/admin"} <= flags
    assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
    assert not any(f.startswith(("max-age", "expires")) for f in flags)  # ends with the browser

    async with web_client(platform, base_url="https://conveyor.test") as client:
        cookie = _cookie(await login(client), "conveyor_session")
    assert "secure" in cookie.lower()


async def test_forwarded_proto_is_believed_only_when_the_proxy_is_trusted(
    platform: Platform, operator: str
) -> None:
    async def session_cookie(target: Platform) -> str:
        async with web_client(target) as client:
            client.headers["X-Forwarded-Proto"] = "https"
            page = await client.get("/admin/login")
            token = csrf_of(page.text)
            # Sent by hand: the client's jar keeps Secure cookies away from http:// URLs.
            client.headers["Cookie"] = f"conveyor_login_csrf={token}"
            form = {"csrf_token": token, "username": "ana", "password": PASSWORD}
            return _cookie(await client.post("/admin/login", data=form), "conveyor_session").lower()

    assert "secure" not in await session_cookie(platform)
    trusting = Platform(platform.settings.model_copy(update={"trust_proxy_headers": True}))
    async with trusting:
        assert "secure" in await session_cookie(trusting)


async def test_the_session_id_changes_at_login_and_the_old_one_dies(
    browser: httpx.AsyncClient, operator: str
) -> None:
    first = (await login(browser)).cookies["conveyor_session"]
    browser.cookies.delete("conveyor_session", path="/admin")
    page = await browser.get("/admin/login")
    browser.cookies.set("conveyor_session", first, path="/admin")  # still held at the new login
    form = {"csrf_token": csrf_of(page.text), "username": "ana", "password": PASSWORD}
    second = (await browser.post("/admin/login", data=form)).cookies["conveyor_session"]
    assert first != second
    browser.cookies.set("conveyor_session", first, path="/admin")
    response = await browser.get("/admin/queues")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")


async def test_a_planted_session_id_is_never_adopted(
    browser: httpx.AsyncClient, operator: str
) -> None:
    browser.cookies.set("conveyor_session", "chosen-by-an-attacker", path="/admin")
    assert (await browser.get("/admin/")).status_code == 303
    issued = (await login(browser)).cookies["conveyor_session"]
    assert issued != "chosen-by-an-attacker" and len(issued) >= 43


async def test_logout_deletes_the_session(browser: httpx.AsyncClient, operator: str) -> None:
    cookie = (await login(browser)).cookies["conveyor_session"]
    token = await signed_in_token(browser)
    response = await browser.post("/admin/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?notice=signed-out"
    assert "conveyor_session=" in response.headers["set-cookie"]  # cleared in the browser
    # Replaying the old cookie does not work: the server forgot the session.
    browser.cookies.set("conveyor_session", cookie, path="/admin")
    assert (await browser.get("/admin/")).status_code == 303


async def test_sessions_expire_when_idle_and_after_their_maximum_age(
    platform: Platform, browser: httpx.AsyncClient, operator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = platform.settings
    await login(browser)
    assert (await browser.get("/admin/")).status_code == 200
    idle = timedelta(seconds=settings.session_idle_timeout_s + 1)
    monkeypatch.setattr(sessions_module, "utcnow", lambda: utcnow() + idle)
    assert (await browser.get("/admin/")).status_code == 303

    monkeypatch.undo()
    await login(browser)
    # Active all along (a request well within every idle timeout), then past the maximum age.
    start = utcnow()
    step = timedelta(seconds=settings.session_idle_timeout_s - 60)
    elapsed = step
    while elapsed < timedelta(seconds=settings.session_max_age_s):
        monkeypatch.setattr(sessions_module, "utcnow", lambda at=start + elapsed: at)
        assert (await browser.get("/admin/")).status_code == 200, elapsed
        elapsed += step
    monkeypatch.setattr(sessions_module, "utcnow", lambda: start + elapsed)
    assert (await browser.get("/admin/")).status_code == 303


async def test_api_keys_cannot_open_the_back_office(platform: Platform) -> None:
    queue = await platform.queues.create({"name": "orders", "type": "embedded"})
    async with web_client(platform) as client:
        for scopes in (("publish",), ("admin",)):
            headers = await bearer(platform, *scopes)
            for path in ("/admin/", "/admin/queues", f"/admin/queues/{queue.id}", "/admin/keys"):
                response = await client.get(path, headers=headers)
                assert response.status_code == 303, (scopes, path)
                assert response.headers["location"].startswith("/admin/login")
            response = await client.post(
                f"/admin/queues/{queue.id}/delete", headers=headers, data={"force": "1"}
            )
            assert response.status_code in (303, 403)
    assert (await platform.queues.get(queue.id)).name == "orders"


@pytest.mark.parametrize(
    ("asked", "landed"),
    [
        ("/admin/keys", "/admin/keys"),
        ("/admin/queues?type=embedded", "/admin/queues?type=embedded"),
        ("https://evil.example/admin", "/admin/"),
        ("//evil.example/admin", "/admin/"),
        ("/\\evil.example", "/admin/"),
        ("/api/v1/keys", "/admin/"),
        ("/admin/../api/v1/keys", "/admin/"),
        ("javascript:alert(1)", "/admin/"),
    ],
)
async def test_login_redirects_only_to_local_pages(
    browser: httpx.AsyncClient, operator: str, asked: str, landed: str
) -> None:
    response = await login(browser, next_path=asked)
    assert response.status_code == 303
    assert response.headers["location"] == landed


async def test_an_unsigned_visit_goes_to_login_and_comes_back(
    browser: httpx.AsyncClient, operator: str
) -> None:
    response = await browser.get("/admin/keys")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin/keys"
    page = await browser.get(response.headers["location"])
    assert 'name="next" value="/admin/keys"' in page.text
    form = {"csrf_token": csrf_of(page.text), "username": "ana", "password": PASSWORD}
    form["next"] = "/admin/keys"
    assert (await browser.post("/admin/login", data=form)).headers["location"] == "/admin/keys"


async def test_security_headers_on_every_page(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "orders", "type": "embedded"})
    for path in ("/admin/", "/admin/queues", f"/admin/queues/{queue.id}", "/admin/keys"):
        response = await signed_in.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "<script>" not in response.text.replace('<script src="/admin/static/', "")
    login_page = await signed_in.get("/admin/login")
    assert login_page.headers["cache-control"] == "no-store"


async def test_stored_xss_renders_as_text_everywhere(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "orders", "type": "embedded", "description": XSS})
    backend = await platform.backends.get(queue)
    await backend.publish(OutgoingMessage(body=b'{"handler": "' + XSS.encode() + b'"}'))
    (delivery,) = await backend.receive(1)
    await backend.dead_letter(delivery, reason=f"handler failed: {XSS}")
    key, _ = await platform.keys.create(XSS, ["publish"], [XSS])
    token = await signed_in_token(signed_in)
    created = await signed_in.post(
        "/admin/keys", data={"csrf_token": token, "name": XSS, "scopes": "admin"}
    )
    invalid = await signed_in.post(
        "/admin/queues/new", data={"csrf_token": token, "name": XSS, "type": XSS}
    )
    pages = [
        created,
        invalid,
        await signed_in.get("/admin/"),
        await signed_in.get("/admin/queues"),
        await signed_in.get(f"/admin/queues/{queue.id}"),
        await signed_in.get(f"/admin/queues/{queue.id}/edit"),
        await signed_in.get(f"/admin/queues/{queue.id}/dead-letters"),
        await signed_in.get("/admin/keys"),
    ]
    for page in pages:
        assert XSS not in page.text, page.url
    for page in pages[-3:]:
        assert ESCAPED_XSS in page.text or "&lt;script&gt;" in page.text, page.url
    assert key.name == XSS


async def test_login_throttling_slows_a_guesser_without_locking_out_the_user(
    platform: Platform, operator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with web_client(platform, address="203.0.113.7") as attacker:
        for _ in range(throttle_module.PAIR_FREE_FAILURES):
            assert (await login(attacker, password="wrong-guess")).status_code == 401
        assert (await login(attacker, password="wrong-guess")).status_code == 401  # now locked
        refused = await login(attacker)  # even the right password is not tried while locked
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "Too many failed sign-ins" in refused.text
        assert "conveyor_session" not in refused.headers.get("set-cookie", "")

    async with web_client(platform, address="198.51.100.20") as user:
        assert (await login(user)).status_code == 303  # the real user is not locked out

    # Once the lock has passed, the attacker's address may try again.
    later = throttle_module.utcnow() + timedelta(seconds=throttle_module.MAX_LOCK_S)
    monkeypatch.setattr(throttle_module, "utcnow", lambda: later)
    async with web_client(platform, address="203.0.113.7") as attacker:
        assert (await login(attacker)).status_code == 303


async def test_one_address_cannot_spray_many_usernames(platform: Platform, operator: str) -> None:
    async with web_client(platform, address="203.0.113.8") as attacker:
        for n in range(throttle_module.ADDRESS_FREE_FAILURES + 1):
            assert (await login(attacker, f"user{n}", "guess")).status_code == 401
        assert (await login(attacker)).status_code == 429


async def test_stored_xss_in_tables_records_and_workers_renders_as_text(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "orders", "type": "embedded"})
    await platform.storage.tables.create(
        {
            "name": "contacts",
            "label": XSS,
            "description": XSS,
            "fields": [
                {"name": "name", "type": "text", "label": XSS, "searchable": True},
                {"name": "kind", "type": "select", "choices": [XSS, "b"], "label": XSS},
                {"name": "code", "type": "text", "pattern": XSS + ".*"},
                {"name": "meta", "type": "json"},
                {"name": "parent", "type": "reference", "table": "contacts"},
            ],
            "rules": [{"name": "named", "expression": f'record.name != "{XSS}"', "message": XSS}],
        }
    )
    first = await platform.storage.records.create(
        "contacts", {"name": XSS + " Ana", "kind": XSS, "meta": {"x": XSS}}
    )
    record = await platform.storage.records.create(
        "contacts", {"name": "Bo " + XSS, "parent": first["id"]}
    )
    await outbox_row(platform, queue.id, "contacts", record["id"], error=XSS)
    await platform.workers.register(
        WorkerInfo("w-1", XSS, 1, XSS, [XSS], [XSS, "billing"], 10, 5.0)
    )
    token = await signed_in_token(signed_in)
    base = f"/admin/tables/contacts/records/{record['id']}"
    invalid = await signed_in.post(
        "/admin/tables/contacts/records/new",
        data={"csrf_token": token, "v.name": XSS, "v.meta": XSS, "v.code": XSS},
    )
    assert invalid.status_code == 422
    check = await signed_in.post(
        "/admin/tables/contacts/rules/check",
        data={
            "csrf_token": token,
            "expression": "has(record.name)",
            "sample": orjson.dumps({XSS: 1}).decode(),
        },
        headers={"X-Partial": "1"},
    )
    broken_rule = await signed_in.post(
        "/admin/tables/contacts/rules/check",
        data={"csrf_token": token, "expression": 'record.name != "x"', "message": XSS,
              "sample": '{"name": "x"}'},
        headers={"X-Partial": "1"},
    )  # fmt: skip
    assert "breaks this rule" in broken_rule.text
    pages = [
        invalid,
        check,
        broken_rule,
        await signed_in.get("/admin/"),
        await signed_in.get("/admin/tables"),
        await signed_in.get("/admin/tables/contacts/design"),
        await signed_in.get("/admin/tables/contacts/fields/kind/edit"),
        await signed_in.get("/admin/tables/contacts/fields/code/edit"),
        await signed_in.get("/admin/tables/contacts"),
        await signed_in.get("/admin/tables/contacts", params={"q": "ana", "name[contains]": XSS}),
        await signed_in.get("/admin/tables/contacts/pick", params={"q": "ana"}),
        await signed_in.get("/admin/tables/contacts/records/new"),
        await signed_in.get(base),
        await signed_in.get(f"/admin/tables/contacts/records/{first['id']}"),
        await signed_in.get(f"{base}/edit"),
        await signed_in.get("/admin/workers"),
        await signed_in.get("/admin/workers/rows"),
        await signed_in.get("/admin/outbox"),
    ]
    for page in pages:
        assert XSS not in page.text, page.url
        assert "&lt;script&gt;" in page.text, page.url


async def test_parallel_guesses_are_counted_before_the_password_is_checked(
    platform: Platform, operator: str
) -> None:
    """Issue 19 item 3: 40 simultaneous guesses got 39x401 and no 429 before."""
    async with web_client(platform, address="203.0.113.9") as attacker:
        page = await attacker.get("/admin/login")
        form = {"csrf_token": csrf_of(page.text), "username": operator, "password": "guess"}
        answers = await asyncio.gather(
            *(attacker.post("/admin/login", data=form) for _ in range(40))
        )
        statuses = sorted(a.status_code for a in answers)
        tried = throttle_module.PAIR_FREE_FAILURES + 1
        assert statuses == [401] * tried + [429] * (40 - tried)
        assert (await login(attacker)).status_code == 429  # the right password is not tried

    # Successes give their count back: one address signs in many times.
    async with web_client(platform, address="198.51.100.21") as office:
        for _ in range(throttle_module.ADDRESS_FREE_FAILURES + 5):
            office.cookies.clear()
            assert (await login(office)).status_code == 303
