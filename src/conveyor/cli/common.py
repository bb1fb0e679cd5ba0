"""What every command shares: running async work and reporting errors plainly."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from conveyor.config import Settings
from conveyor.exceptions import ConfigurationError, ConveyorError, NotFound
from conveyor.heap import freeze_start_up
from conveyor.platform import Platform

T = TypeVar("T")

# No markup: queue names, URLs and messages may contain [brackets].
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` on stderr; the caller raises the returned Exit."""
    err.print(Text("error: ", style="red") + Text(message))
    return typer.Exit(code)


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; a Conveyor error becomes one clear line on stderr and exit code 1."""
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(work)
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None
    except NotFound as exc:
        # Most often a command run away from the server's directory, on an empty database.
        raise fail(f"{exc.message} (in {database_label(load_settings())})") from None
    except ConveyorError as exc:
        raise fail(exc.message) from None
    except OSError as exc:
        raise fail(str(exc)) from None


def database_label(settings: Settings) -> str:
    """The database a command opened, as the user can recognise it: its URL with no
    password, a SQLite file by its absolute path."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        return f"sqlite:///{Path(url.removeprefix('sqlite:///')).resolve()}"
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if "@" in rest else url


def empty_database_hint(settings: Settings) -> str:
    return (
        f"(database {database_label(settings)}: commands must open the server's database "
        "and secret key; run them from its directory or set CONVEYOR_DATABASE_URL / "
        "CONVEYOR_DATA_DIR)"
    )


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (every platform but Windows), as uvicorn picks it for
    `serve`: workers and relays spend much of their time handing work between tasks and
    from driver threads to the loop, which uvloop does faster. None: asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    return uvloop.new_event_loop


def load_settings() -> Settings:
    try:
        return Settings.load()
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None


@asynccontextmanager
async def running_platform(
    settings: Settings | None = None, *, relay: bool | None = False, upkeep: bool = False
) -> AsyncIterator[Platform]:
    """A platform with the database brought up to date first; with `upkeep`, its
    background tasks run too (and the outbox relay when `relay` says so)."""
    platform = Platform(settings or load_settings())
    try:
        await platform.migrate()
        if upkeep:  # a long-running command: `conveyor worker` or `conveyor relay`
            await platform.open(relay=relay)
            freeze_start_up()
        yield platform
    finally:
        await platform.close()


def admin_platform() -> AbstractAsyncContextManager[Platform]:
    """A platform for one admin command."""
    return running_platform()


def read_stdin_line() -> str:
    return sys.stdin.readline().rstrip("\r\n")
