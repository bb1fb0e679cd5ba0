"""A handler raising KeyboardInterrupt or SystemExit (issue 28, item 5) fails its own
message, like any exception; the worker runs on, and a real SIGINT still stops it
gracefully."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from conveyor.platform import Platform
from tests.conftest import DatabaseTarget
from tests.worker.conftest import NewQueue, only
from tests.worker.helpers import drained, eventually
from tests.worker.test_cli_worker import harness

pytestmark = pytest.mark.slow

HANDLERS = """
import json, os, sys, time
from conveyor import handler

RECORDS = os.environ["TEST_RECORDS"]

@handler("interrupt")
async def interrupt(context):
    raise KeyboardInterrupt("from the handler")

@handler("exit")
async def exit_(context):
    sys.exit(4)

@handler("plain_exit")
def plain_exit(context):
    raise SystemExit(3)

@handler("work", auto_ack=True)
async def work(context):
    line = json.dumps({"id": context.message.id, "attempt": context.message.attempt,
                       "pid": os.getpid(), "start": time.time(), "end": time.time()})
    with open(RECORDS, "a") as out:
        out.write(line + "\\n")
"""


@only("embedded", "rabbitmq")
async def test_a_handler_raising_base_exceptions_fails_only_its_message(
    platform: Platform, database: DatabaseTarget, tmp_path: Path, worker_queue: NewQueue
) -> None:
    # Given handlers that raise KeyboardInterrupt and SystemExit, and healthy messages
    queue = await worker_queue(max_attempts=2, retry_backoff_s=0.05, retry_backoff_max_s=0.1)
    for name in ("interrupt", "exit", "plain_exit"):
        await platform.publisher.publish_object(queue, {"handler": name})
    healthy = [
        (await platform.publisher.publish_object(queue, {"handler": "work"}))["message-id"]
        for _ in range(5)
    ]
    with harness(database, tmp_path, queue) as h:
        (tmp_path / "handlers.py").write_text(HANDLERS)
        run = h.start("--concurrency", "4")

        # When the worker runs them all
        await eventually(
            lambda: drained(platform, queue, dead=3) if len(h.executions()) >= 5 else False,
            timeout_s=30,
            what="the healthy ones done, the others dead-lettered",
        )

        # Then it is still running, each healthy message ran once, and each failing
        # one was retried and dead-lettered with what it raised
        assert run.process.poll() is None, run.process.communicate(timeout=10)[0]
        assert sorted(e.id for e in h.executions()) == sorted(healthy)
        backend = await platform.backends.get(queue)
        errors = sorted(d.last_error or "" for d in (await backend.dead_letters(limit=10)).items)
        assert len(errors) == 3
        assert all("gave up after 2 attempt(s)" in e for e in errors), errors
        assert any("KeyboardInterrupt: from the handler" in e for e in errors), errors
        assert any("SystemExit: 4" in e for e in errors), errors
        assert any("SystemExit: 3" in e for e in errors), errors

        # and a real SIGINT still stops it gracefully
        run.process.send_signal(signal.SIGINT)
        await run.finish(30)
        assert run.process.returncode == 0, run.output
        assert "SIGINT received: stopping gracefully" in run.output
