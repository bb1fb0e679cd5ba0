"""SIGTERM/SIGINT for a worker process: the first stops gracefully, a second at once.

Exiting at once skips all cleanup on purpose: the messages still held come back
when their leases expire, exactly as after a crash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("conveyor.worker")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def graceful_stop(stop: Callable[[], None]) -> Iterator[None]:
    """While active, the first signal calls `stop`, the next one exits the process."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            log.warning("%s received: stopping gracefully (send it again to exit now)", name)
            stop()
            return
        log.warning("%s received again: exiting now; held messages return via their lease", name)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(128 + signum)

    for signum in SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
