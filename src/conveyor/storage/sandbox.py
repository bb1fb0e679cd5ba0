"""Rules whose cost depends on the record run here: in worker processes, with a deadline.

The CEL library cannot be interrupted, and a thread cannot be stopped, so an evaluation
that outlives its deadline has its process killed; the next one starts a fresh process.
Waiting happens in a thread, so the event loop keeps serving other requests meanwhile.
Cheap rules (most of them) never come here: they run inline (`rule_cost.py`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from conveyor.storage import rule_worker

log = logging.getLogger(__name__)

#: How long one rule may run on one record.
RULE_TIMEOUT_S = 1.0
#: Rules evaluated at once (each in its own process); more wait for a free one.
MAX_PROCESSES = 2
START_TIMEOUT_S = 30.0
_WORKER = Path(rule_worker.__file__)


class RuleTimeout(Exception):
    """The rule took longer than its deadline."""


class _Process:
    def __init__(self) -> None:
        # -I: no user site, no environment, no script directory on the path.
        self.popen = subprocess.Popen(  # noqa: S603 (our own interpreter and file)
            [sys.executable, "-I", str(_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.answer(START_TIMEOUT_S)

    def evaluate(self, expression: str, context: dict[str, Any], timeout_s: float) -> Any:
        assert self.popen.stdin is not None
        rule_worker.write(self.popen.stdin, (expression, context))  # type: ignore[arg-type]
        kind, value = self.answer(timeout_s)
        if kind == "raised":
            raise value
        return value

    def answer(self, timeout_s: float) -> tuple[str, Any]:
        assert self.popen.stdout is not None
        readable, _, _ = select.select([self.popen.stdout], [], [], timeout_s)
        if not readable:
            raise RuleTimeout
        answer: tuple[str, Any] = rule_worker.read(self.popen.stdout)  # type: ignore[arg-type]
        return answer

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.popen.kill()
        self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class RuleSandbox:
    """A few worker processes, started when first needed, that evaluate rules."""

    def __init__(self, *, processes: int = MAX_PROCESSES, timeout_s: float = RULE_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._idle: queue.LifoQueue[_Process | None] = queue.LifoQueue()
        for _ in range(processes):
            self._idle.put(None)  # a slot whose process starts when first used
        self._lock = threading.Lock()
        self._all: set[_Process] = set()

    async def execute(self, expression: str, context: dict[str, Any]) -> Any:
        """The rule's result (a bool, or None for anything else); raises what CEL raised,
        or RuleTimeout after `timeout_s`."""
        return await asyncio.to_thread(self._execute, expression, context)

    def _execute(self, expression: str, context: dict[str, Any]) -> Any:
        process = self._idle.get()
        try:
            if process is None:
                process = self._start()
            started = time.monotonic()
            try:
                return process.evaluate(expression, context, self.timeout_s)
            except (RuleTimeout, EOFError, OSError, ValueError):
                elapsed = time.monotonic() - started
                log.warning("a rule ran for %.1f s and its process was stopped", elapsed)
                self._discard(process)
                process = None
                raise RuleTimeout from None
        finally:
            self._idle.put(process)

    def _start(self) -> _Process:
        process = _Process()
        with self._lock:
            self._all.add(process)
        return process

    def _discard(self, process: _Process) -> None:
        process.kill()
        with self._lock:
            self._all.discard(process)

    def close(self) -> None:
        """Stop every worker process (new evaluations start new ones)."""
        with self._lock:
            processes, self._all = list(self._all), set()
        for process in processes:
            process.kill()


_default = RuleSandbox()
atexit.register(_default.close)


def default_sandbox() -> RuleSandbox:
    """The process's sandbox: its processes start when a rule first needs one, and end
    with this process (killed at exit, or stopping by themselves when their input closes)."""
    return _default
