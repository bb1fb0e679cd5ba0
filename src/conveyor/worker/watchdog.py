"""Noticing a blocked event loop, naming the handler that blocks it, and keeping the
broker connections alive meanwhile.

An async handler that calls blocking code (`time.sleep`, a synchronous HTTP client)
stops the whole worker: no heartbeats go out, no lease is extended. The loop sets a
timestamp every `beat_s`; a thread of the watchdog's own checks it. When the loop has
been silent for `blocked_s`, the thread logs which handler runs (the task the loop is
in) and where (its innermost frame in the handler's code), and from then on calls the
keep-alive hooks of the backends (RabbitMQ sends AMQP heartbeats from this thread, so
the broker does not close the connection and hand its messages to other consumers
while one is still running here). When the loop runs again it logs how long it was
blocked. Nothing of this costs anything per message.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from conveyor.worker.logs import StructuredLog

log = logging.getLogger("conveyor.worker")

#: Who is running: the handler name and message id of an asyncio task, if it runs one.
Describe = Callable[["asyncio.Task[object] | None"], dict[str, object]]
KeepAlive = Callable[[], None]


class Watchdog:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        describe: Describe,
        log: StructuredLog,
        *,
        beat_s: float = 0.25,
        blocked_s: float = 1.0,
        keep_alive_s: float = 1.0,
    ) -> None:
        self._loop = loop
        self._describe = describe
        self._log = log
        self.beat_s = beat_s
        self.blocked_s = blocked_s
        self.keep_alive_s = keep_alive_s
        self._keep_alives: list[KeepAlive] = []
        self._last_beat = time.monotonic()
        self._blocked_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="conveyor-watchdog", daemon=True)
        self._loop_thread = threading.get_ident()
        self._timer: asyncio.TimerHandle | None = None
        #: Stalls seen so far (for tests and heartbeats).
        self.stalls = 0

    def keep_alive(self, hook: KeepAlive) -> None:
        """Call `hook` from the watchdog's thread every `keep_alive_s` while the loop is
        blocked. It must be thread-safe and never block."""
        self._keep_alives.append(hook)

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._thread.is_alive():
            self._thread.join(self.beat_s * 4)

    def _beat(self) -> None:
        now = time.monotonic()
        since = self._blocked_since
        if since is not None:
            self._blocked_since = None
            self._log.warning("the event loop runs again", blocked_s=round(now - since, 1))
        self._last_beat = now
        self._timer = self._loop.call_later(self.beat_s, self._beat)

    def _watch(self) -> None:
        next_keep_alive = 0.0
        while not self._stop.wait(self.beat_s):
            last = self._last_beat
            now = time.monotonic()
            if now - last < self.blocked_s:
                continue
            if self._blocked_since is None:
                self._blocked_since = last
                self.stalls += 1
                self._report(now - last)
                next_keep_alive = 0.0
            if now >= next_keep_alive:
                next_keep_alive = now + self.keep_alive_s
                for hook in self._keep_alives:
                    try:
                        hook()
                    except Exception:
                        log.warning("a keep-alive failed while the loop was blocked", exc_info=True)

    def _report(self, blocked_s: float) -> None:
        try:
            fields = self._describe(asyncio.current_task(self._loop))
        except Exception:  # the loop's state may move under us: the report stays useful
            fields = {}
        frame = sys._current_frames().get(self._loop_thread)
        if frame is not None:
            fields["at"] = _where(frame)
        self._log.warning(
            "the event loop is blocked: a handler calls blocking code (use await, or a "
            "plain function, which runs in a thread)",
            blocked_s=round(blocked_s, 1),
            **fields,
        )


_LIBRARIES = (f"{sys.base_prefix}/lib/", f"{sys.prefix}/lib/", "<frozen ")


def _where(frame: FrameType) -> str:
    """The innermost frame of the application's own code (else the innermost of all),
    as `file:line in function`."""
    current: FrameType | None = frame
    while current is not None and current.f_code.co_filename.startswith(_LIBRARIES):
        current = current.f_back
    found = current or frame
    return f"{found.f_code.co_filename}:{found.f_lineno} in {found.f_code.co_name}"
