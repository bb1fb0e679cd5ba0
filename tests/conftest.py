from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from conveyor.config import Settings
from conveyor.platform import Platform
from conveyor.server import create_app
from tests import services


@dataclass(frozen=True)
class DatabaseTarget:
    url: str
    schema: str | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {"CONVEYOR_DATABASE_URL": self.url}
        if self.schema:
            env["CONVEYOR_DATABASE_SCHEMA"] = self.schema
        return env


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseTarget]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield DatabaseTarget(f"sqlite:///{tmp_path / 'conveyor.db'}")
        return
    async with postgres_schema() as schema:
        yield DatabaseTarget(services.POSTGRES_URL, schema)


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A uniquely named, empty PostgreSQL schema, dropped afterwards."""
    services.require("PostgreSQL", services.POSTGRES_URL, 5432)
    schema = f"t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(services.POSTGRES_URL)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    try:
        yield schema
    finally:
        conn = await asyncpg.connect(services.POSTGRES_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture
def settings(database: DatabaseTarget, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_url=database.url,
        database_schema=database.schema,
        secret_key="test-secret-key",  # type: ignore[arg-type]
    ).resolved()


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    platform = Platform(settings)
    await platform.migrate()
    async with platform:
        yield platform


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://conveyor.test") as client:
        yield client


async def bearer(
    platform: Platform, *scopes: str, queues: list[str] | None = None
) -> dict[str, str]:
    _, token = await platform.keys.create("test", scopes, queues)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(platform: Platform) -> dict[str, str]:
    """Headers carrying an admin key."""
    return await bearer(platform, "admin")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if services.missing:
        names = ", ".join(sorted(services.missing))
        terminalreporter.write_line(
            f"!!! SKIPPED the tests that need: {names} (not reachable here) !!!",
            red=True,
            bold=True,
        )
