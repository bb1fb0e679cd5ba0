"""Real headless Chromium (Debian's, driven by Playwright) against a real `conveyor serve`."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from conveyor.config import Settings
from tests import services
from tests.cli.helpers import cli_env, conveyor, serving
from tests.conftest import DatabaseTarget

T = TypeVar("T")
CHROMIUM = os.environ.get("CONVEYOR_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"
USERNAME, PASSWORD = "ana", "a long passphrase for ana"
WIDTHS = {"desktop": (1280, 800), "phone": (375, 812)}


@dataclass(frozen=True)
class BackOffice:
    """A running server, and how to reach its database from the test."""

    base: str
    settings: Settings

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        services.missing.add("Chromium")
        message = f"no Chromium at {CHROMIUM} (scripts/services/chromium.sh installs it)"
        if services.IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(chromium: Browser, backoffice: BackOffice) -> Iterator[Page]:
    context = chromium.new_context(
        viewport={"width": 1280, "height": 800}, base_url=backoffice.base
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=backoffice.base)
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def run_async(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run async work from a test: in a thread of its own, since Playwright's sync API
    keeps an event loop marked as running in the test's thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result(timeout=60)


@contextmanager
def _postgres_schema() -> Iterator[str]:
    services.require("PostgreSQL", services.POSTGRES_URL, 5432)
    schema = f"b_{secrets.token_hex(6)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(services.POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_async(lambda: run(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        run_async(lambda: run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@contextmanager
def backoffice_on(kind: str, root: Path) -> Iterator[BackOffice]:
    """`conveyor serve` on a fresh database (sqlite or postgres) with one operator."""
    with ExitStack() as stack:
        if kind == "sqlite":
            target = DatabaseTarget(f"sqlite:///{root / 'conveyor.db'}")
        else:
            target = DatabaseTarget(services.POSTGRES_URL, stack.enter_context(_postgres_schema()))
        data_dir = root / "data"
        env = cli_env(target, data_dir) | {"CONVEYOR_KEY_CACHE_TTL_S": "0"}
        created = conveyor(
            "users", "create", "--username", USERNAME, "--password-stdin",
            env=env, cwd=root, stdin=PASSWORD + "\n",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        server = stack.enter_context(serving(env, root))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=data_dir,
            database_url=target.url,
            database_schema=target.schema,
        ).resolved()
        yield BackOffice(server.base, settings)


@pytest.fixture(scope="module")
def backoffice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackOffice]:
    with backoffice_on("sqlite", tmp_path_factory.mktemp("backoffice")) as running:
        yield running


def screenshot(page: Page, name: str) -> None:
    """The page at desktop and phone width, saved under test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
        # Nothing may stick out sideways at phone width: no horizontal scrolling of the page.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow}px too wide at {width}px"
    page.set_viewport_size({"width": 1280, "height": 800})


def sign_in(page: Page) -> None:
    page.goto("/admin/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/")
