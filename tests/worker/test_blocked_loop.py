"""An async handler that blocks the event loop (issue 28, item 6): the watchdog names
it, the RabbitMQ connection stays up, and no message runs twice at once."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from conveyor.platform import Platform
from tests import rabbitmq
from tests.conftest import DatabaseTarget
from tests.worker.conftest import only
from tests.worker.helpers import drained, eventually
from tests.worker.test_cli_worker import Run, check, harness

pytestmark = pytest.mark.slow

HANDLERS = """
import asyncio, json, os, time
from conveyor import handler

RECORDS = os.environ["TEST_RECORDS"]

def _write(path, **fields):
    with open(path, "a") as out:
        out.write(json.dumps(fields) + "\\n")

async def _run(context, block_s):
    start = time.time()
    _write(RECORDS + ".started", id=context.message.id, pid=os.getpid(), start=start)
    time.sleep(block_s)  # the mistake: blocking code in an async handler
    await asyncio.sleep(0.2)
    _write(RECORDS, id=context.message.id, attempt=context.message.attempt,
           pid=os.getpid(), start=start, end=time.time())
    context.runtime.ack_message()

@handler("block", timeout_s=30)
async def block(context):
    await _run(context, 6)

@handler("work", timeout_s=30)
async def work(context):
    await _run(context, 0)
"""


@only("rabbitmq")
async def test_a_handler_blocking_the_loop_is_named_and_runs_nowhere_else_meanwhile(
    platform: Platform, database: DatabaseTarget, tmp_path: Path, queue_type: str
) -> None:
    rabbitmq.require()
    # Given a RabbitMQ queue whose connections beat every 2 s (RabbitMQ drops one that
    # is silent for two beats), with leases shorter than the block
    name = f"w-block-{rabbitmq.unique_name()}"
    fields = rabbitmq.registration(name)
    fields["url"] += "?heartbeat=2"
    queue = await platform.queues.create(
        {**fields, "options": {"visibility_timeout_s": 4, "max_attempts": 3}}
    )
    runs: list[Run] = []
    try:
        with harness(database, tmp_path, queue) as h:
            runs = h.runs
            (tmp_path / "handlers.py").write_text(HANDLERS)
            # and a worker running a handler that blocks its loop for 6 s
            first = h.start("--concurrency", "5")
            block = await platform.publisher.publish_object(queue, {"handler": "block"})
            await eventually(lambda: h.started() == 1, timeout_s=20, what="the block started")
            # while 10 more messages come, and a second worker
            work = [
                (await platform.publisher.publish_object(queue, {"handler": "work"}))["message-id"]
                for _ in range(10)
            ]
            second = h.start("--concurrency", "5")

            # When all is done
            accepted = [block["message-id"], *work]
            await eventually(
                lambda: h.finished() >= set(accepted), timeout_s=40, what="all handled"
            )
            await eventually(lambda: drained(platform, queue), what="all acked")
            for run in (first, second):
                run.process.send_signal(signal.SIGTERM)
                await run.finish(30)

        # Then no message ran twice at once, none was lost or dead-lettered
        report = check(accepted, h.executions(), h.runs)
        assert report["overlapping"] == [] and report["lost"] == [], report
        assert (await (await platform.backends.get(queue)).stats()).dead == 0
        # and the first worker said which handler blocked its loop, and for how long
        assert "the event loop is blocked" in first.output, first.output
        assert "handler=block" in first.output and f"message_id={block['message-id']}" in (
            first.output
        )
        assert "the event loop runs again" in first.output
    finally:
        for run in runs:  # shown when the test fails
            print(f"--- worker {run.process.pid}:\n{run.output}")
        await platform.backends.discard(queue.id)
        await rabbitmq.delete_queues(name)
