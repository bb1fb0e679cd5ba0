"""What every command shares: running async work and reporting errors plainly.

Commands start fast (`conveyor --help` and the light commands in well under a second):
this module and the command modules import only Typer at the top, and each command
imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    import asyncio

    from rich.console import Console

    from conveyor.config import Settings
    from conveyor.db import Database
    from conveyor.platform import Platform

T = TypeVar("T")


class _Console:
    """A rich console made on first use. No markup: queue names, URLs and messages may
    contain [brackets]."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr

    @cached_property
    def console(self) -> Console:
        from rich.console import Console

        return Console(stderr=self._stderr, highlight=False, soft_wrap=True, markup=False)

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)


out = _Console(stderr=False)
err = _Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` on stderr; the caller raises the returned Exit."""
    from rich.text import Text

    err.print(Text("error: ", style="red") + Text(message))
    return typer.Exit(code)


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; a Conveyor error becomes one clear line on stderr and exit code 1."""
    import asyncio

    from conveyor.exceptions import ConfigurationError, ConveyorError, NotFound

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
    from conveyor.config import Settings
    from conveyor.exceptions import ConfigurationError

    try:
        return Settings.load()
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None


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


@asynccontextmanager
async def running_platform(
    settings: Settings | None = None, *, relay: bool | None = False, upkeep: bool = False
) -> AsyncIterator[Platform]:
    """A platform with the database brought up to date first; with `upkeep`, its
    background tasks run too (and the outbox relay when `relay` says so)."""
    from conveyor.db.revision import ensure_newest
    from conveyor.heap import freeze_start_up
    from conveyor.platform import Platform

    platform = Platform(settings or load_settings())
    try:
        await ensure_newest(platform.db)
        if upkeep:  # a long-running command: `conveyor worker` or `conveyor relay`
            await platform.open(relay=relay)
            freeze_start_up()
        yield platform
    finally:
        await platform.close()


def admin_platform() -> AbstractAsyncContextManager[Platform]:
    """A platform for one admin command that needs queue backends or records."""
    return running_platform()


@dataclass(frozen=True)
class Session:
    """The database of one light command, with the settings it was opened with."""

    settings: Settings
    db: Database


@asynccontextmanager
async def database_session() -> AsyncIterator[Session]:
    """The database alone, brought up to date: what the commands on keys, users and
    the queue registry need (no queue backend, no record store)."""
    from conveyor.db import Database
    from conveyor.db.revision import ensure_newest

    settings = load_settings()
    db = Database.from_settings(settings)
    try:
        await ensure_newest(db)
        yield Session(settings, db)
    finally:
        await db.close()


def read_stdin_line() -> str:
    return sys.stdin.readline().rstrip("\r\n")
