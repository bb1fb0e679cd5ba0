"""Commands run their async work on uvloop, as `conveyor serve` does through uvicorn."""

from __future__ import annotations

import asyncio

import pytest
import typer
import uvloop

from conveyor.cli.common import run
from conveyor.exceptions import ConveyorError


async def running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_commands_run_on_uvloop() -> None:
    assert isinstance(run(running_loop()), uvloop.Loop)


def test_a_conveyor_error_still_ends_the_command_with_exit_code_1() -> None:
    async def fails() -> None:
        raise ConveyorError("the queue 'x' does not exist")

    with pytest.raises(typer.Exit) as exit_:
        run(fails())
    assert exit_.value.exit_code == 1
