"""`conveyor relay`: the outbox relay on its own, for deployments that want it apart."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from conveyor.cli.common import load_settings, out, run, running_platform

if TYPE_CHECKING:
    from conveyor.config import Settings

log = logging.getLogger("conveyor.relay")


def relay() -> None:
    """Run the outbox relay on its own.

    It publishes committed outbox rows to their queues until SIGTERM or Ctrl-C.

    Any number of relays may run (each `conveyor serve` runs one unless
    CONVEYOR_RELAY_ENABLED=false): rows are claimed under leases, so none is sent twice
    in normal operation.
    """
    settings = load_settings()
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("conveyor").setLevel(settings.log_level.upper())
    run(_relay(settings))


async def _relay(settings: Settings) -> None:
    import asyncio
    import signal

    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    async with running_platform(settings, relay=True, upkeep=True) as platform:
        out.print(f"Outbox relay {platform.relay.id} running; Ctrl-C to stop.")
        await stopped.wait()
    out.print("Outbox relay stopped.")
