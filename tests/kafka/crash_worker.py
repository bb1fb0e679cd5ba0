"""A worker that takes messages, settles some, says so, and waits to be killed.

Run as `python -m tests.kafka.crash_worker QUEUE_NAME BOOTSTRAP COUNT`; it acks every
message but the first it received, prints `READY <id of the unacked one>`, then sleeps.
"""

from __future__ import annotations

import asyncio
import sys
import time

from conveyor.queues.base import Delivery
from conveyor.queues.kafka import KafkaBackend
from conveyor.queues.model import Credentials
from tests.kafka.support import kafka_queue


async def main(name: str, bootstrap: str, count: int) -> None:
    backend = KafkaBackend(kafka_queue(name, url=bootstrap), Credentials(None, None))
    await backend.open()
    got: list[Delivery] = []
    deadline = time.monotonic() + 40
    while len(got) < count and time.monotonic() < deadline:
        got += await backend.receive(count - len(got), wait_s=1)
    first, *rest = sorted(got, key=lambda d: d.backend_id)
    for delivery in rest:
        await backend.ack(delivery)
    await asyncio.sleep(1)  # the consumer thread commits what it may
    print("READY", first.id, flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
