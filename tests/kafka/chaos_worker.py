"""A worker with ten handlers in parallel, each taking 50-300 ms, to be killed with -9.

Run as `python -m tests.kafka.chaos_worker QUEUE_NAME BOOTSTRAP DONE_FILE`: every
handled message id is appended to DONE_FILE before its ack (so a kill between the two
makes a duplicate, never a loss).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from conveyor.queues.base import Delivery
from conveyor.queues.kafka import KafkaBackend
from conveyor.queues.model import Credentials
from tests.kafka.support import kafka_queue

CONCURRENCY = 10


async def main(name: str, bootstrap: str, done_path: str) -> None:
    backend = KafkaBackend(kafka_queue(name, url=bootstrap), Credentials(None, None))
    await backend.open()
    done = os.open(done_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    running: set[asyncio.Task[None]] = set()

    async def handle(delivery: Delivery) -> None:
        await asyncio.sleep(random.uniform(0.05, 0.3))
        os.write(done, f"{delivery.id}\n".encode())
        await backend.ack(delivery)

    while True:
        room = CONCURRENCY - len(running)
        if room == 0:
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            continue
        for delivery in await backend.receive(room, wait_s=0.5):
            task = asyncio.create_task(handle(delivery))
            running.add(task)
            task.add_done_callback(running.discard)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
