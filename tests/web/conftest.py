from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.platform import Platform
from tests.web.helpers import PASSWORD, login, web_client


@pytest.fixture
async def operator(platform: Platform) -> str:
    await platform.users.create("ana", PASSWORD)
    return "ana"


@pytest.fixture
async def browser(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, like a browser; not signed in."""
    async with web_client(platform) as client:
        yield client


@pytest.fixture
async def signed_in(browser: httpx.AsyncClient, operator: str) -> httpx.AsyncClient:
    response = await login(browser, operator)
    assert response.status_code == 303, response.text
    return browser
