"""Signing in to the back-office over ASGI, and reading tokens out of its pages."""

from __future__ import annotations

import re

import httpx

from conveyor.links.outbox import OutboxStore
from conveyor.links.rows import Status
from conveyor.platform import Platform
from conveyor.queues.base import new_message_id, now_ms
from conveyor.server import create_app

PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"
ESCAPED_XSS = "&lt;script&gt;alert(1)&lt;/script&gt;"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def web_client(
    platform: Platform, *, address: str = "127.0.0.1", base_url: str = "http://conveyor.test"
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(platform), client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


async def login(
    client: httpx.AsyncClient, username: str = "ana", password: str = PASSWORD, next_path: str = ""
) -> httpx.Response:
    page = await client.get("/admin/login")
    assert page.status_code == 200, page.text
    form = {"csrf_token": csrf_of(page.text), "username": username, "password": password}
    if next_path:
        form["next"] = next_path
    return await client.post("/admin/login", data=form)


async def signed_in_token(client: httpx.AsyncClient) -> str:
    """The session's CSRF token, read from a signed-in page."""
    page = await client.get("/admin/keys")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


async def outbox_row(
    platform: Platform,
    queue_id: str,
    table: str,
    record_id: int,
    *,
    status: str = "failed",
    error: str = "queue gone",
) -> int:
    """An outbox row written as a relay leaves it (a failed one by default)."""
    now = now_ms()
    row = {
        "queue_id": queue_id,
        "table_name": table,
        "record_id": str(record_id),
        "event": "create",
        "message_id": new_message_id(),
        "ordering_key": f"{table}:{record_id}",
        "payload": "{}",
        "status": status,
        "attempts": 3,
        "next_attempt_at": now + 3_600_000,
        "last_error": error,
        "created_at": now,
    }
    async with platform.db.write() as conn:
        await OutboxStore.add(conn, [row])
    newest = await platform.outbox.page(record_id=str(record_id), status=Status(status), limit=1)
    return newest[0].id
