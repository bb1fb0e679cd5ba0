"""`conveyor worker` as a real process: crashes (FI-01), graceful stops (FI-02), errors.

The handler file records every finished execution as one JSON line
`{id, attempt, pid, start, end}`; `check` reads them back the way RELIABILITY.md's
harness describes: lost, duplicated, and whether each duplicate is explained by a kill.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.platform import Platform
from conveyor.queues.model import Queue
from conveyor.workers import WorkerState
from tests.cli.helpers import cli_env, conveyor
from tests.conftest import DatabaseTarget, bearer
from tests.worker.conftest import NewQueue
from tests.worker.helpers import drained, eventually, stats

pytestmark = pytest.mark.slow

HANDLERS = """
import json, os, time
from conveyor import handler

RECORDS = os.environ["TEST_RECORDS"]

def _write(path, **fields):
    line = (json.dumps(fields) + "\\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)

@handler("work", auto_ack=True)
def work(context):
    start = time.time()
    _write(RECORDS + ".started", id=context.message.id, pid=os.getpid(), start=start)
    time.sleep(context.message.payload["ms"] / 1000)
    _write(RECORDS, id=context.message.id, attempt=context.message.attempt,
           pid=os.getpid(), start=start, end=time.time())
"""


@dataclass
class Execution:
    id: str
    attempt: int
    pid: int
    start: float
    end: float


@dataclass
class Run:
    """A worker subprocess and what it printed."""

    process: subprocess.Popen[str]
    killed_at: float | None = None
    output: str = ""

    async def finish(self, timeout_s: float) -> None:
        """Wait for the process to exit and keep what it printed, without blocking the
        event loop: the test's own platform may be inside a database transaction (its
        relay claims rows every poll), and a blocked loop would hold it, and SQLite's
        write lock with it, while the worker needs that lock to shut down."""
        self.output = (await asyncio.to_thread(self.process.communicate, timeout=timeout_s))[0]


@dataclass
class Harness:
    env: dict[str, str]
    cwd: Path
    queue: Queue
    records: Path
    runs: list[Run] = field(default_factory=list)

    def start(self, *args: str) -> Run:
        command = [sys.executable, "-m", "conveyor", "worker", "--queue", self.queue.name]
        command += ["--handlers", str(self.cwd / "handlers.py"), *args]
        process = subprocess.Popen(
            command,
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        run = Run(process)
        self.runs.append(run)
        return run

    async def kill(self, run: Run) -> None:
        run.process.send_signal(signal.SIGKILL)
        run.killed_at = time.time()
        await run.finish(10)

    def executions(self) -> list[Execution]:
        if not self.records.exists():
            return []
        return [Execution(**json.loads(line)) for line in self.records.read_text().splitlines()]

    def started(self) -> int:
        return len(self._started())

    def _started(self) -> list[dict[str, Any]]:
        path = Path(f"{self.records}.started")
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    def finished(self) -> set[str]:
        return {e.id for e in self.executions()}

    def interrupted(self) -> set[str]:
        """Messages a killed worker started and did not finish."""
        killed = {r.process.pid for r in self.runs if r.killed_at is not None}
        done = {(e.id, e.pid) for e in self.executions()}
        started = {(s["id"], s["pid"]) for s in self._started() if s["pid"] in killed}
        return {message_id for message_id, pid in started - done}


@contextmanager
def harness(
    database: DatabaseTarget, tmp_path: Path, queue: Queue, heartbeat_s: float = 0.5
) -> Iterator[Harness]:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    records = tmp_path / "records.jsonl"
    env = cli_env(database, tmp_path / "data") | {
        "CONVEYOR_SECRET_KEY": "test-secret-key",
        "CONVEYOR_WORKER_HEARTBEAT_S": str(heartbeat_s),
        "TEST_RECORDS": str(records),
    }
    state = Harness(env, tmp_path, queue, records)
    try:
        yield state
    finally:
        for run in state.runs:
            if run.process.poll() is None:
                run.process.kill()
                run.output = run.process.communicate(timeout=10)[0]


def check(accepted: list[str], executions: list[Execution], runs: list[Run]) -> dict[str, Any]:
    """Lost, duplicated and unexplained executions, per the reliability harness."""
    by_id: dict[str, list[Execution]] = defaultdict(list)
    for execution in executions:
        by_id[execution.id].append(execution)
    kills = {r.process.pid: r.killed_at for r in runs if r.killed_at is not None}
    unexplained = []
    overlapping = []
    for message_id, runs_of_one in by_id.items():
        runs_of_one.sort(key=lambda e: e.start)
        for earlier, later in itertools.pairwise(runs_of_one):
            if later.start < earlier.end:
                overlapping.append(message_id)
            # A repeat is only allowed when the earlier run's worker was killed after it
            # finished, before its ack could commit.
            killed_at = kills.get(earlier.pid)
            if killed_at is None or killed_at < earlier.end:
                unexplained.append(message_id)
    return {
        "lost": sorted(set(accepted) - set(by_id)),
        "unexpected": sorted(set(by_id) - set(accepted)),
        "duplicated": sum(len(v) - 1 for v in by_id.values()),
        "unexplained": unexplained,
        "overlapping": overlapping,
    }


async def publish_batches(
    client: httpx.AsyncClient, headers: dict[str, str], queue: Queue, payloads: list[Any]
) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(payloads), 100):
        response = await client.post(
            f"/api/v1/zstorage/queue/{queue.id}/publish-batch",
            json={"messages": payloads[start : start + 100]},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        ids += [r["message-id"] for r in response.json()["results"]]
    return ids


@pytest.mark.every_backend(
    # Each restart waits out the killed member's group session: 50 s for this test.
    # Kafka's kill -9 is in tests/integration/test_kafka_crash.py.
    but={"kafka": "too slow for the suite's time budget"}
)
async def test_fi01_kill_9_during_a_run_loses_nothing(
    platform: Platform,
    client: httpx.AsyncClient,
    database: DatabaseTarget,
    tmp_path: Path,
    worker_queue: NewQueue,
) -> None:
    # Given 150 messages whose handlers take 50-500 ms, accepted through the API
    queue = await worker_queue(visibility_timeout_s=2, max_attempts=20, retry_backoff_s=0.1)
    payloads = [{"handler": "work", "ms": 50 + (n * 37) % 450} for n in range(150)]
    accepted = await publish_batches(client, await bearer(platform, "publish"), queue, payloads)

    with harness(database, tmp_path, queue) as h:
        # When the worker is killed with SIGKILL three times mid-run, and restarted
        for _ in range(3):
            run = h.start("--concurrency", "10", "--prefetch", "5")
            before = len(h.executions())
            await eventually(
                lambda before=before: len(h.executions()) >= before + 15 and h.started() > 0,
                timeout_s=40,
                what="progress before the kill",
            )
            await h.kill(run)
            assert run.process.returncode == -signal.SIGKILL
        last = h.start("--concurrency", "10", "--prefetch", "5")

        # every message ends done within the redelivery timeout + 30 s (brokers cannot
        # all count what a consumer holds, so the handlers' own records decide too)
        async def all_done() -> bool:
            return h.finished() >= set(accepted) and await drained(platform, queue)

        await eventually(all_done, timeout_s=45, what="all done")
        last.process.send_signal(signal.SIGTERM)
        await last.finish(30)
        assert last.process.returncode == 0, last.output

    # Then nothing was lost, and every duplicate is explained by a kill
    report = check(accepted, h.executions(), h.runs)
    print("FI-01", {k: v if isinstance(v, int) else len(v) for k, v in report.items()})
    assert report["lost"] == [] and report["unexpected"] == []
    # the kills did interrupt work: it came back and was finished by a later worker
    interrupted = h.interrupted()
    assert interrupted, "no kill caught a handler running: the test proved nothing"
    assert interrupted <= h.finished()
    assert report["unexplained"] == [] and report["overlapping"] == []
    assert report["duplicated"] <= 3 * 15  # at most what was held at each kill
    assert (await stats(platform, queue)).dead == 0
    # and the killed workers show as dead, the last one as stopped
    states = {r.info.pid: r.state(_now()) for r in await platform.workers.list()}
    await eventually(
        lambda: _states(platform, [r.process.pid for r in h.runs[:3]], WorkerState.DEAD),
        what="killed workers listed as dead",
    )
    assert states[last.process.pid] is WorkerState.STOPPED


@pytest.mark.every_backend(
    but={"sqs": "SQS counts every receive as an attempt: a release cannot undo that"}
)
async def test_fi02_sigterm_lets_running_handlers_finish_and_releases_the_rest(
    platform: Platform, database: DatabaseTarget, tmp_path: Path, worker_queue: NewQueue
) -> None:
    # Given 30 two-second messages and a worker running 10 of them
    queue = await worker_queue(visibility_timeout_s=60)
    for _ in range(30):
        await platform.publisher.publish_object(queue, {"handler": "work", "ms": 2000})
    with harness(database, tmp_path, queue) as h:
        run = h.start("--concurrency", "10", "--prefetch", "5", "--shutdown-timeout-s", "20")
        await eventually(lambda: h.started() == 10, timeout_s=30, what="10 handlers running")

        # When it gets SIGTERM
        stopped_at = time.monotonic()
        run.process.send_signal(signal.SIGTERM)
        await run.finish(40)

        # Then it exits 0 once the 10 have finished and acked
        assert run.process.returncode == 0, run.output
        assert time.monotonic() - stopped_at < 15
        finished = h.executions()
        assert len(finished) == 10 and h.started() == 10
        # and the 20 others are visible again at once, not after the 60 s lease
        now = await stats(platform, queue)
        assert now.ready == 20 and now.in_flight in (0, None) and now.delayed in (0, None)
        # (those it held unstarted: at most --prefetch; brokers fill it their own way)
        assert 0 < run.output.count("result=released") <= 5, run.output

        # A new worker finishes the rest: no finished work is repeated, and a release
        # did not count as an attempt
        h.records.with_name("records.jsonl.started").unlink()
        again = h.start("--concurrency", "20")
        # Every execution, not only an empty queue: RabbitMQ's ready count leaves out what
        # a consumer holds, and the SIGTERM below would release that unstarted.
        await eventually(lambda: len(h.executions()) == 30, timeout_s=40, what="the rest done")
        await eventually(lambda: drained(platform, queue), timeout_s=10, what="all acked")
        again.process.send_signal(signal.SIGTERM)
        await again.finish(30)
        assert again.process.returncode == 0
    executions = h.executions()
    assert len(executions) == 30 and len({e.id for e in executions}) == 30
    assert all(e.attempt == 1 for e in executions)


async def test_a_second_signal_exits_at_once(
    platform: Platform, database: DatabaseTarget, tmp_path: Path, worker_queue: NewQueue
) -> None:
    queue = await worker_queue(visibility_timeout_s=60)
    await platform.publisher.publish_object(queue, {"handler": "work", "ms": 30_000})
    with harness(database, tmp_path, queue) as h:
        run = h.start()
        await eventually(lambda: h.started() == 1, timeout_s=30, what="the handler running")
        run.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        began = time.monotonic()
        run.process.send_signal(signal.SIGINT)
        await run.finish(10)
        assert time.monotonic() - began < 5
        assert run.process.returncode == 128 + signal.SIGINT, run.output
        assert "exiting now" in run.output
    # the message is still there: it comes back when its lease expires
    now = await stats(platform, queue)
    assert (now.ready, now.in_flight) == (0, 1)


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    # Errors come before any queue work: one database kind is enough here.
    env = cli_env(DatabaseTarget(f"sqlite:///{tmp_path / 'c.db'}"), tmp_path / "data")
    (tmp_path / "empty.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("import nothing_like_this\n")
    (tmp_path / "ok.py").write_text(
        "from conveyor import handler\n\n@handler('x', auto_ack=True)\ndef x(context):\n    pass\n"
    )
    cases = [
        (["--queue", "q", "--handlers", str(tmp_path / "empty.py")], 2, "defines no @handler"),
        (["--queue", "q", "--handlers", str(tmp_path / "broken.py")], 2, "nothing_like_this"),
        (["--queue", "q", "--handlers", "no.such.module"], 2, "could not import handlers"),
        (["--queue", "nope", "--handlers", str(tmp_path / "ok.py")], 1, "no queue"),
        (["--handlers", str(tmp_path / "ok.py")], 2, "--queue"),
        # Several files after one --handlers: all are loaded (the second one fails here).
        (["--queue", "q", "--handlers", str(tmp_path / "ok.py"), "broken.py"], 2, "nothing_like"),
        (["--queue", "q", "--handlers", "ok.py", "empty.py"], 2, "empty.py defines no"),
    ]
    for args, code, text in cases:
        result = conveyor("worker", *args, env=env, cwd=tmp_path)
        assert result.returncode == code, (args, result.stderr)
        assert text in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def _now() -> Any:
    from conveyor.db.types import utcnow

    return utcnow()


async def _states(platform: Platform, pids: list[int], state: WorkerState) -> bool:
    records = {r.info.pid: r.state(_now()) for r in await platform.workers.list()}
    return all(records.get(pid) is state for pid in pids)
