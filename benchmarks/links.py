"""Record writes with a table→queue link vs without, and commit→broker latency.

1. Writes/s: record creates through the records service (20 concurrent writers) on a
   table with no link, a link to an embedded queue, and a link to a RabbitMQ queue
   (outbox mode, relay running), same run, SQLite and PostgreSQL; the variants take
   turns over several rounds and each reports its median.
2. Latency: at half the maximum linked write rate, the time from a write's commit to
   its message arriving at a consumer reading RabbitMQ with aio-pika (p50/p99).
3. The same three tables written through the HTTP API, as users write records: a
   server process (uvicorn, the app with its relay, as `conveyor serve` runs it) driven
   by wrk with 20 connections, the variants taking turns; each reports its median
   (`--no-http` skips this; it needs wrk).

Needs RabbitMQ (CONVEYOR_TEST_RABBITMQ_URL, default amqp://guest:guest@127.0.0.1:5672/)
and PostgreSQL (CONVEYOR_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
import uvloop
from yardstick import serve, wrk

from conveyor.config import Settings
from conveyor.heap import freeze_start_up
from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from conveyor.queues.rabbitmq.topology import Topology

RABBITMQ_URL = os.environ.get("CONVEYOR_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
WRITERS = 20
HERE = Path(__file__).parent
TABLE = {
    "fields": [
        {"name": "nome", "type": "text", "required": True},
        {"name": "idade", "type": "integer"},
        {"name": "email", "type": "email"},
    ]
}


@asynccontextmanager
async def platform_on(database: str, *, relay: bool = True) -> AsyncIterator[Platform]:
    with tempfile.TemporaryDirectory() as tmp:
        overrides: dict[str, Any] = {"data_dir": tmp, "secret_key": "bench"}
        schema = None
        if database == "SQLite":
            overrides["database_url"] = f"sqlite:///{tmp}/bench.db"
        else:
            schema = f"bench_{secrets.token_hex(4)}"
            conn = await asyncpg.connect(POSTGRES_URL)
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.close()
            overrides |= {"database_url": POSTGRES_URL, "database_schema": schema}
        platform = Platform(Settings(_env_file=None, **overrides).resolved())  # type: ignore[call-arg]
        await platform.migrate()
        await platform.open(relay=relay)
        freeze_start_up()  # as `conveyor serve` does once it has started
        try:
            yield platform
        finally:
            await platform.close()
            if schema:
                conn = await asyncpg.connect(POSTGRES_URL)
                await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
                await conn.close()


async def rabbit_queue(platform: Platform, name: str) -> str:
    queue = await platform.queues.create(
        {
            "name": name,
            "type": "rabbitmq",
            "url": "amqp://127.0.0.1:5672/",
            "username": "guest",
            "password": "guest",
        }
    )
    await platform.backends.get(queue)
    return queue.id


async def write_rate(platform: Platform, table: str, seconds: float) -> tuple[float, int]:
    """Writes per second, and how many."""
    stop = time.perf_counter() + seconds
    count = 0

    async def writer(n: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < stop:
            await platform.storage.records.create(
                table, {"nome": f"w{n}-{i}", "idade": 30, "email": f"w{n}.{i}@example.com"}
            )
            count += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    return count / (time.perf_counter() - started), count


async def drain_outbox(platform: Platform) -> None:
    while (await platform.outbox.counts())["pending"]:  # noqa: ASYNC110 - polling the database
        await asyncio.sleep(0.2)


async def latency(
    platform: Platform, table: str, queue_name: str, rate: float, seconds: float
) -> list[float]:
    """Writes paced at `rate`; per message, commit → arrival at an aio-pika consumer (ms)."""
    committed: dict[int, float] = {}
    arrived: dict[int, float] = {}
    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel()
    queue = await channel.get_queue(queue_name)
    await queue.purge()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        arrived[orjson.loads(message.body)["record"]["id"]] = time.perf_counter()
        await message.ack()

    tag = await queue.consume(on_message)
    interval = 1 / rate
    start = time.perf_counter()
    n = 0
    tasks = []

    async def one(i: int) -> None:
        record = await platform.storage.records.create(
            table, {"nome": f"l{i}", "idade": 30, "email": f"l{i}@example.com"}
        )
        committed[record["id"]] = time.perf_counter()

    while time.perf_counter() - start < seconds:
        tasks.append(asyncio.create_task(one(n)))
        n += 1
        await asyncio.sleep(max(0, start + n * interval - time.perf_counter()))
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + 30
    while len(arrived) < len(committed) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await queue.cancel(tag)
    await connection.close()
    return [(arrived[i] - committed[i]) * 1000 for i in committed if i in arrived]


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def run_database(database: str, seconds: float, rounds: int) -> list[str]:
    lines = []
    async with platform_on(database) as platform:
        names, rabbit_name = await linked_tables(platform)
        for table in names.values():
            await write_rate(platform, table, 1)  # warm up
            await drain_outbox(platform)
        # Interleaved rounds, the median of each: the machine's drift over a run (other
        # load, the database file growing) then hits every variant alike.
        samples: dict[str, list[float]] = {label: [] for label in names}
        loop_cpu: dict[str, list[float]] = {label: [] for label in names}
        for _ in range(rounds):
            for label, table in names.items():
                cpu = time.thread_time()  # this thread runs the event loop
                rate, count = await write_rate(platform, table, seconds / rounds)
                await drain_outbox(platform)  # the publishing of these writes counts too
                samples[label].append(rate)
                loop_cpu[label].append((time.thread_time() - cpu) / count * 1e6)
        rates = {label: statistics.median(values) for label, values in samples.items()}
        for label, rate in rates.items():
            ratio = rate / rates["plain"]
            what = f"writes, link to {label}" if label != "plain" else "writes, no link"
            cpu_us = statistics.median(loop_cpu[label])
            lines.append(
                f"{database:10} {what:34} {rate:9.0f}/s  {ratio:5.2f}x"
                f"  loop CPU {cpu_us:5.0f} us/write"
            )
        half = rates["rabbitmq"] / 2
        samples = await latency(platform, names["rabbitmq"], rabbit_name, half, seconds)
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        lines.append(
            f"{database:10} {'commit -> RabbitMQ consumer':34} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
            f"  (at {half:.0f} writes/s, {len(samples)} messages)"
        )
        await delete_rabbit_queue(rabbit_name)
    return lines


async def linked_tables(platform: Platform) -> tuple[dict[str, str], str]:
    """Three tables: no link, a link to an embedded queue, a link to a RabbitMQ queue;
    their names by variant, and the RabbitMQ queue's name."""
    names = {"plain": "bench_plain", "embedded": "bench_embedded", "rabbitmq": "bench_rabbit"}
    for name in names.values():
        await platform.storage.tables.create({"name": name, **TABLE})
    embedded = await platform.queues.create(
        {"name": f"bench-emb-{secrets.token_hex(3)}", "type": "embedded"}
    )
    rabbit_name = f"bench-links-{secrets.token_hex(3)}"
    rabbit_id = await rabbit_queue(platform, rabbit_name)
    await platform.links.put(names["embedded"], embedded.id, LinkSpec.parse(names["embedded"], {}))
    await platform.links.put(names["rabbitmq"], rabbit_id, LinkSpec.parse(names["rabbitmq"], {}))
    return names, rabbit_name


async def delete_rabbit_queue(name: str) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel()
    for queue, _ in Topology(name).queues():  # with its .dlq and delay queues
        await channel.queue_delete(queue)
    await connection.close()


async def pending(client: httpx.AsyncClient) -> int:
    counts = (await client.get("/api/v1/zstorage/outbox?limit=1")).json()["counts"]
    return int(counts["pending"])


async def run_http(database: str, seconds: float, rounds: int) -> list[str]:
    """Record creates through the HTTP API, with wrk, on a server process of our app."""
    async with platform_on(database, relay=False) as platform:
        names, rabbit_name = await linked_tables(platform)
        _, token = await platform.keys.create("bench", ["admin"])
        settings = platform.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")} | {
            "PYTHONPATH": str(HERE),
            "CONVEYOR_DATABASE_URL": settings.database_url,
            "CONVEYOR_DATA_DIR": str(settings.data_dir),
            "CONVEYOR_SECRET_KEY": "bench",
        }
        if settings.database_schema:
            env["CONVEYOR_DATABASE_SCHEMA"] = settings.database_schema
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        body = orjson.dumps({"nome": "Ana Silva", "idade": 30, "email": "ana@example.com"})
        per_turn = max(2, round(seconds / rounds))  # whole seconds, for wrk
        with tempfile.TemporaryDirectory() as work, serve(env, Path(work)) as base:

            async def drive(table: str, duration_s: int) -> tuple[float, float]:
                url = f"{base}/api/v1/zstorage/tables/{table}/records"
                load = await asyncio.to_thread(
                    wrk, url, body.decode(), key=token, seconds=duration_s, connections=WRITERS
                )
                # The publishing of these writes counts too (as in the writes above).
                async with httpx.AsyncClient(base_url=base, headers=headers) as client:
                    while await pending(client):  # noqa: ASYNC110 - polling the server
                        await asyncio.sleep(0.2)
                return load.rps, load.p99_ms

            try:
                for table in names.values():
                    await drive(table, 2)  # warm up
                samples: dict[str, list[tuple[float, float]]] = {label: [] for label in names}
                for _ in range(rounds):
                    for label, table in names.items():
                        samples[label].append(await drive(table, per_turn))
            finally:
                await delete_rabbit_queue(rabbit_name)
    medians = {label: sorted(runs)[len(runs) // 2] for label, runs in samples.items()}
    lines = []
    for label, (rate, p99) in medians.items():
        what = f"HTTP writes, link to {label}" if label != "plain" else "HTTP writes, no link"
        lines.append(
            f"{database:10} {what:34} {rate:9.0f}/s  {rate / medians['plain'][0]:5.2f}x"
            f"  request p99 {p99:5.1f} ms"
        )
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5, help="per variant, in all")
    parser.add_argument(
        "--rounds", type=int, default=5, help="turns the variants take (more: steadier medians)"
    )
    parser.add_argument(
        "--database", choices=["SQLite", "PostgreSQL"], action="append", help="default: both"
    )
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP API rows")
    args = parser.parse_args()
    http = not args.no_http
    if http and shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the HTTP rows: apt-get install wrk (or --no-http)")
    lines = []
    for database in args.database or ["SQLite", "PostgreSQL"]:
        lines += await run_database(database, args.seconds, args.rounds)
        if http:
            lines += await run_http(database, args.seconds, args.rounds)
    print(
        f"\n{WRITERS} concurrent writers, {args.seconds:g} s per variant in {args.rounds}"
        " interleaved rounds (median); loop CPU: the event loop's thread, per write,"
        " publishing included (when the machine is busy, writes are bound by it)"
        " (goal: link >= 0.7x no link; p99 <= 50 ms)\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    uvloop.run(main())
