"""Admins manage API keys; operators run everything else and never reach the keys."""

from __future__ import annotations

import httpx
import pytest

from conveyor.exceptions import Conflict
from conveyor.platform import Platform
from conveyor.sessions import SessionStore
from conveyor.users import Role
from tests.web.helpers import PASSWORD, csrf_of, login, web_client


async def test_an_operator_sees_no_keys_page_and_cannot_create_or_revoke_keys(
    platform: Platform,
) -> None:
    await platform.users.create("olga", PASSWORD, Role.OPERATOR)
    key, _ = await platform.keys.create("svc", ["publish"], None)
    async with web_client(platform) as browser:
        assert (await login(browser, "olga")).status_code == 303
        home = await browser.get("/admin/")
        assert home.status_code == 200 and 'href="/admin/keys"' not in home.text
        assert 'href="/admin/queues"' in home.text
        token = csrf_of(home.text)
        page = await browser.get("/admin/keys")
        assert page.status_code == 403 and "only admins manage API keys" in page.text
        made = await browser.post(
            "/admin/keys", data={"csrf_token": token, "name": "root", "scopes": "admin"}
        )
        assert made.status_code == 403
        revoked = await browser.post(f"/admin/keys/{key.id}/revoke", data={"csrf_token": token})
        assert revoked.status_code == 403
    assert [k.name for k in await platform.keys.list()] == ["svc"]
    assert not (await platform.keys.get(key.id)).revoked


async def test_an_admin_manages_keys_and_a_promoted_operator_can_too(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    home = await signed_in.get("/admin/")
    assert 'href="/admin/keys"' in home.text
    assert (await signed_in.get("/admin/keys")).status_code == 200
    await platform.users.create("olga", PASSWORD, Role.OPERATOR)
    await platform.users.set_role("olga", Role.ADMIN)
    async with web_client(platform) as browser:
        await login(browser, "olga")
        assert (await browser.get("/admin/keys")).status_code == 200


async def test_a_password_change_ends_the_users_sessions(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    assert (await signed_in.get("/admin/queues")).status_code == 200
    await platform.users.set_password("ana", "a brand new passphrase")
    again = await signed_in.get("/admin/queues")
    assert again.status_code == 303 and again.headers["location"].startswith("/admin/login")
    async with web_client(platform) as browser:
        assert (await login(browser, "ana", PASSWORD)).status_code != 303
        assert (await login(browser, "ana", "a brand new passphrase")).status_code == 303


async def test_users_are_listed_and_the_last_admin_stays(platform: Platform) -> None:
    await platform.users.create("zed", PASSWORD, "operator")
    await platform.users.create("amy", PASSWORD)
    assert [(u.username, u.role) for u in await platform.users.list()] == [
        ("amy", Role.ADMIN),
        ("zed", Role.OPERATOR),
    ]
    await platform.users.delete("zed")
    sessions = SessionStore(platform.db, idle_timeout_s=60, max_age_s=60)
    amy = await platform.users.get("amy")
    _, session_id = await sessions.create(amy)
    with pytest.raises(Conflict, match="last admin"):
        await platform.users.delete("amy")
    assert await sessions.get(session_id) is not None
