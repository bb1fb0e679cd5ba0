from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conveyor.config import Settings, load_or_create_secret_key
from conveyor.db import async_url
from conveyor.exceptions import ConfigurationError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql+asyncpg://u@h/db?ssl=require"),
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
    ],
)
def test_async_url_picks_the_async_driver(given: str, expected: str) -> None:
    assert async_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("url", ["mysql://h/db", "sqlite://", "sqlite:///:memory:", "not a url"])
def test_async_url_refuses_what_it_cannot_serve(url: str) -> None:
    with pytest.raises(ConfigurationError):
        async_url(url)


def test_secret_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_secret_key(tmp_path / "data")
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert len(first) >= 43
    assert load_or_create_secret_key(tmp_path / "data") == first


def test_concurrent_first_starts_agree_on_one_secret_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_or_create_secret_key(tmp_path), range(32)))
    assert len(keys) == 1
    assert sorted(os.listdir(tmp_path)) == ["secret_key"]


def test_settings_default_to_a_sqlite_file_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    settings = Settings.load()
    assert settings.database_url == "sqlite:///.conveyor/conveyor.db"
    assert (
        settings.secret_key.get_secret_value()
        == (tmp_path / ".conveyor/secret_key").read_text().strip()
    )


def test_settings_read_the_environment_and_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CONVEYOR_PORT=9123\nCONVEYOR_SECRET_KEY=from-dotenv\n")
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", "postgresql://db/x")
    settings = Settings.load()
    assert (settings.port, settings.database_url) == (9123, "postgresql://db/x")
    assert settings.secret_keys == ["from-dotenv"]


def test_invalid_settings_are_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_PORT", "not-a-port")
    with pytest.raises(ConfigurationError, match="CONVEYOR"):
        Settings.load()
