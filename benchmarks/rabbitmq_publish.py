"""Publishing to RabbitMQ: Conveyor's backend and API beside raw aio-pika, in one run.

Every variant does the same durable publish: a persistent message, `mandatory`, on a
channel with publisher confirms, waiting for the confirm. Variants take turns in short
runs (the machine may be shared).

    .venv/bin/python benchmarks/rabbitmq_publish.py [--messages 500] [--rounds 10]

Uses CONVEYOR_TEST_RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import httpx
import orjson
import uvloop

from conveyor.config import Settings
from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage, QueueBackend
from conveyor.queues.rabbitmq.topology import Topology
from conveyor.server import create_app

URL = os.environ.get("CONVEYOR_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
BATCH = 100
CONCURRENCY = 32
BODY = orjson.dumps({"handler": "orders.created", "order": {"id": 12345, "total": "99.90"}})

Run = Callable[[int], Awaitable[None]]


async def in_parallel(count: int, width: int, one: Callable[[], Awaitable[object]]) -> None:
    async def lane(share: int) -> None:
        for _ in range(share):
            await one()

    await asyncio.gather(*(lane(count // width + (i < count % width)) for i in range(width)))


def raw_variants(exchange: aio_pika.abc.AbstractExchange, queue: str) -> dict[str, Run]:
    def message() -> aio_pika.Message:
        return aio_pika.Message(
            BODY,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(uuid.uuid4()),
            content_type="application/json",
        )

    async def publish() -> None:
        await exchange.publish(message(), queue, mandatory=True)

    async def single(n: int) -> None:
        for _ in range(n):
            await publish()

    async def concurrent(n: int) -> None:
        await in_parallel(n, CONCURRENCY, publish)

    async def batch(n: int) -> None:
        for _ in range(n // BATCH):
            await asyncio.gather(*(publish() for _ in range(BATCH)))

    return {"single": single, "concurrent": concurrent, "batch": batch}


def backend_variants(backend: QueueBackend) -> dict[str, Run]:
    async def publish() -> None:
        await backend.publish(OutgoingMessage(BODY))

    async def single(n: int) -> None:
        for _ in range(n):
            await publish()

    async def concurrent(n: int) -> None:
        await in_parallel(n, CONCURRENCY, publish)

    async def batch(n: int) -> None:
        for _ in range(n // BATCH):
            await backend.publish_batch([OutgoingMessage(BODY) for _ in range(BATCH)])

    return {"single": single, "concurrent": concurrent, "batch": batch}


def http_variants(client: httpx.AsyncClient, queue_id: str, key: str) -> dict[str, Run]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    one_url = f"/api/v1/zstorage/queue/{queue_id}/publish"
    batch_url = f"/api/v1/zstorage/queue/{queue_id}/publish-batch"
    batch_body = b'{"messages": [' + b",".join([BODY] * BATCH) + b"]}"

    async def publish() -> None:
        response = await client.post(one_url, content=BODY, headers=headers)
        response.raise_for_status()

    async def single(n: int) -> None:
        for _ in range(n):
            await publish()

    async def concurrent(n: int) -> None:
        await in_parallel(n, CONCURRENCY, publish)

    async def batch(n: int) -> None:
        for _ in range(n // BATCH):
            response = await client.post(batch_url, content=batch_body, headers=headers)
            response.raise_for_status()

    return {"single": single, "concurrent": concurrent, "batch": batch}


Results = dict[tuple[str, str], float]


async def compare(
    variants: dict[str, dict[str, Run]],
    messages: int,
    rounds: int,
    reset: Callable[[], Awaitable[None]],
) -> tuple[Results, Results]:
    """Per variant and mode: messages per second over all rounds, and the process's CPU
    microseconds per message. Variants take turns in short runs, in alternating order,
    so that a busy moment of a shared machine falls on all of them alike; the queue is
    emptied after each run."""
    elapsed: Results = {}
    cpu: Results = {}
    modes = next(iter(variants.values())).keys()
    for mode in modes:
        for round_ in range(rounds):
            order = list(variants.items())
            for who, runs in order if round_ % 2 == 0 else reversed(order):
                started, cpu_started = time.perf_counter(), time.process_time()
                await runs[mode](messages)
                elapsed[who, mode] = elapsed.get((who, mode), 0) + time.perf_counter() - started
                cpu[who, mode] = cpu.get((who, mode), 0) + time.process_time() - cpu_started
                await reset()
    total = messages * rounds
    rates = {key: total / seconds for key, seconds in elapsed.items()}
    return rates, {key: seconds * 1e6 / total for key, seconds in cpu.items()}


async def purge(channel: aio_pika.abc.AbstractChannel, queue: str) -> None:
    await (await channel.get_queue(queue)).purge()


async def main(messages: int, rounds: int) -> None:
    name = f"conveyor-bench-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=Path(tmp),
            database_url=f"sqlite:///{tmp}/bench.db",
            secret_key="bench",  # type: ignore[arg-type]
        ).resolved()
        platform = Platform(settings)
        await platform.migrate()
        async with platform:
            # The registry takes the user and password out of the URL and encrypts them.
            registered = await platform.queues.create(
                {"name": name, "type": "rabbitmq", "url": URL}
            )
            _, key = await platform.keys.create("bench", ["publish"], None)
            backend = await platform.backends.connect(registered)
            raw = await aio_pika.connect_robust(URL)
            channel = await raw.channel(publisher_confirms=True, on_return_raises=True)
            transport = httpx.ASGITransport(app=create_app(platform))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                variants = {
                    "raw aio-pika": raw_variants(channel.default_exchange, name),
                    "Conveyor backend": backend_variants(backend),
                    "Conveyor HTTP API": http_variants(client, registered.id, key),
                }
                rates, cpu = await compare(
                    variants, messages, rounds, reset=lambda: purge(channel, name)
                )
            report(rates, cpu, messages, rounds)
            await backend.close()
            for queue, _ in Topology(name).queues():
                await channel.queue_delete(queue)
            await raw.close()


def report(rates: Results, cpu: Results, messages: int, rounds: int) -> None:
    print(f"\nRabbitMQ publish: {rounds} turns of {messages} messages per variant and mode")
    print(f"single: one at a time; concurrent: {CONCURRENCY} in flight; batch: {BATCH} per call")
    who = ("raw aio-pika", "Conveyor backend", "Conveyor HTTP API")
    print(f"{'':>12}" + "".join(f"{w:>26}" for w in who))
    print(f"{'mode':>12}" + f"{'msg/s':>12}{'CPU us/msg':>14}" * 3 + f"{'backend/raw':>14}")
    for mode in ("single", "concurrent", "batch"):
        cells = "".join(f"{rates[w, mode]:>12,.0f}{cpu[w, mode]:>14,.0f}" for w in who)
        ratio = rates["Conveyor backend", mode] / rates["raw aio-pika", mode]
        print(f"{mode:>12}{cells}{ratio:>13.2f}x")
    http = {mode: rates["Conveyor HTTP API", mode] for mode in ("single", "concurrent", "batch")}
    print(
        f"HTTP batch endpoint vs single publishes: {http['batch'] / http['single']:.1f}x "
        f"one at a time, {http['batch'] / http['concurrent']:.1f}x with {CONCURRENCY} in flight"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="per turn")
    parser.add_argument("--rounds", type=int, default=10, help="turns per variant and mode")
    options = parser.parse_args()
    uvloop.run(main(options.messages, options.rounds))
