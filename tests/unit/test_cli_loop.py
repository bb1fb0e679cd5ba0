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


def test_worker_handlers_take_several_values_after_one_option() -> None:
    from conveyor.cli.worker import expand_handlers

    args = ["worker", "--queue", "q", "--handlers", "a.py", "b.py", "--concurrency", "2"]
    assert expand_handlers(args) == [
        "worker", "--queue", "q", "--handlers", "a.py", "--handlers", "b.py", "--concurrency", "2"
    ]  # fmt: skip
    assert expand_handlers(["worker", "--handlers=a.py", "b.py"]) == [
        "worker", "--handlers=a.py", "--handlers", "b.py"
    ]  # fmt: skip
    repeated = ["worker", "--handlers", "a.py", "--handlers", "b.py"]
    assert expand_handlers(repeated) == repeated
    assert expand_handlers(["queues", "show", "--handlers", "a", "b"])[-1] == "b"
