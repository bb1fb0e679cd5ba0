"""What every command shares: running async work and reporting errors plainly."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console

from conveyor.config import Settings
from conveyor.exceptions import ConfigurationError, ConveyorError
from conveyor.platform import Platform

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; a Conveyor error becomes one clear line on stderr and exit code 1."""
    try:
        return asyncio.run(work)
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    except ConveyorError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def load_settings() -> Settings:
    try:
        return Settings.load()
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


@asynccontextmanager
async def admin_platform() -> AsyncIterator[Platform]:
    """A platform for one admin command, with the database brought up to date first."""
    platform = Platform(load_settings())
    try:
        await platform.migrate()
        yield platform
    finally:
        await platform.db.close()


def read_stdin_line() -> str:
    return sys.stdin.readline().rstrip("\r\n")
