"""Drain rate of a backlog: Conveyor's worker beside its peers, in the same run.

    pip install -e '.[bench,rabbitmq]'
    python benchmarks/worker_drain.py [--messages 5000] [--rss-messages 50000]
    python benchmarks/worker_drain.py --section "broker / RabbitMQ" --rss-messages 0

Every contender drains the same backlog (filled before it starts, not timed) with
concurrency 10, once with a no-op handler and once with a 10 ms sleep, each in a fresh
subprocess. Durability is the same on both sides of a row: SQLite with WAL and
`synchronous=FULL`, PostgreSQL with its defaults. Logging is at WARNING everywhere, so
per-message log lines cost nobody anything.

Sections compare like with like: the embedded queue on SQLite vs Huey's SQLite queue,
on PostgreSQL vs Procrastinate; "worker alone" runs the worker over an in-memory
backend, the ceiling any queue backend leaves it. "broker / RabbitMQ" puts a `rabbitmq`
queue beside Celery (threads pool, late acks, prefetch multiplier 1), Dramatiq (one
process, 10 threads, its defaults otherwise) and a hand-written aio-pika consumer
(prefetch 10, ack after the handler), nothing but the protocol: the limit. Every
contender there uses a durable queue of its own with a unique name, persistent
messages, and deletes its queues afterwards. `GOALS` are printed beside the ratios.

`--rss-messages` runs `conveyor worker` as a real process on a 50k backlog and samples
its resident memory while it drains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson
import uvloop

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
RABBITMQ_URL = os.environ.get("CONVEYOR_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
CONCURRENCY = 10
HANDLERS = ("noop", "sleep 10 ms")

#: section → (our contender, the peers), in table order.
SECTIONS: dict[str, list[str]] = {
    "embedded / SQLite": ["conveyor-sqlite", "huey-sqlite"],
    "embedded / PostgreSQL": ["conveyor-postgres", "procrastinate-postgres"],
    # The worker over an in-memory backend: what it could do if the queue cost nothing.
    "worker alone": ["conveyor-memory"],
    "broker / RabbitMQ": [
        "conveyor-rabbitmq",
        "celery-rabbitmq",
        "dramatiq-rabbitmq",
        # Not a product: a minimal consumer of the same broker, the limit.
        "aio-pika-rabbitmq",
    ],
}

#: contender → the least "ours/it" ratio we aim for against it.
GOALS: dict[str, float] = {
    "celery-rabbitmq": 3.0,
    "dramatiq-rabbitmq": 1.5,
    "aio-pika-rabbitmq": 0.8,
}


# Conveyor --------------------------------------------------------------------------


async def _conveyor_platform(url: str, workdir: Path, schema: str | None) -> Any:
    from conveyor.config import Settings
    from conveyor.platform import Platform

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=workdir,
        database_url=url,
        database_schema=schema,
        secret_key="bench",  # type: ignore[arg-type]
    ).resolved()
    platform = Platform(settings)
    await platform.migrate()
    return platform


EMBEDDED = {"name": "bench", "type": "embedded"}


async def _fill(platform: Any, n: int, spec: dict[str, Any]) -> Any:
    """Register the queue `spec` describes and publish `n` messages to it."""
    from conveyor.queues.base import OutgoingMessage

    queue = await platform.queues.create(spec)
    backend = await platform.backends.get(queue)
    for start in range(0, n, 500):
        batch = [
            OutgoingMessage(body=orjson.dumps({"handler": "bench", "n": i}))
            for i in range(start, min(n, start + 500))
        ]
        await backend.publish_batch(batch)
    return queue


async def _conveyor_drain(
    url: str, schema: str | None, kind: str, n: int, workdir: Path, spec: dict[str, Any] = EMBEDDED
) -> float:
    from conveyor import Context, HandlerRegistry, handler
    from conveyor.worker.runner import Worker, WorkerOptions

    @handler("bench", auto_ack=True)
    async def bench(context: Context) -> None:
        if kind != "noop":
            await asyncio.sleep(0.01)

    platform = await _conveyor_platform(url, workdir, schema)
    async with platform:
        queue = await _fill(platform, n, spec)
        worker = Worker(
            platform, [queue], HandlerRegistry([bench]), WorkerOptions(concurrency=CONCURRENCY)
        )
        began = time.perf_counter()
        task = asyncio.create_task(worker.run())
        while worker.counters.acked < n:  # noqa: ASYNC110 - polled, not awaited
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - began
        worker.stop()
        await task
    return elapsed


def conveyor_sqlite(kind: str, n: int, workdir: Path) -> float:
    url = f"sqlite:///{workdir / 'conveyor.db'}"
    return uvloop.run(_conveyor_drain(url, None, kind, n, workdir))


def conveyor_postgres(kind: str, n: int, workdir: Path) -> float:
    async def run() -> float:
        async with _postgres_schema() as schema:
            return await _conveyor_drain(POSTGRES_URL, schema, kind, n, workdir)

    return uvloop.run(run())


class _MemoryBackend:
    """Hands out synthetic deliveries and acks at once: the worker's own ceiling."""

    def __init__(self, queue: Any, n: int) -> None:
        self.queue, self.left, self.next_id = queue, n, 0

    async def receive(self, max_messages: int, *, wait_s: float = 0) -> list[Any]:
        from conveyor.queues.base import Delivery

        await asyncio.sleep(0)
        count, self.left = min(max_messages, self.left), self.left - min(max_messages, self.left)
        first, self.next_id = self.next_id, self.next_id + count
        body = b'{"handler": "bench"}'
        return [Delivery(str(i), body, {}, 1, 0, None, str(i)) for i in range(first, first + count)]

    async def ack(self, delivery: Any) -> bool:
        await asyncio.sleep(0)
        return True

    async def extend_lease(self, delivery: Any, *, seconds: float) -> bool:
        return True

    async def close(self) -> None:
        return None


def conveyor_memory(kind: str, n: int, workdir: Path) -> float:
    async def run() -> float:
        from conveyor import Context, HandlerRegistry, handler
        from conveyor.worker.runner import Worker, WorkerOptions

        @handler("bench", auto_ack=True)
        async def bench(context: Context) -> None:
            if kind != "noop":
                await asyncio.sleep(0.01)

        platform = await _conveyor_platform(f"sqlite:///{workdir / 'c.db'}", workdir, None)
        async with platform:
            queue = await platform.queues.create(EMBEDDED)
            backend = _MemoryBackend(queue, n)

            async def connect(_: Any) -> Any:
                return backend

            platform.backends.connect = connect
            options = WorkerOptions(concurrency=CONCURRENCY)
            worker = Worker(platform, [queue], HandlerRegistry([bench]), options)
            began = time.perf_counter()
            task = asyncio.create_task(worker.run())
            while worker.counters.acked < n:  # noqa: ASYNC110 - polled, not awaited
                await asyncio.sleep(0.002)
            elapsed = time.perf_counter() - began
            worker.stop()
            await task
        return elapsed

    return uvloop.run(run())


# Huey (SQLite) ---------------------------------------------------------------------


def huey_sqlite(kind: str, n: int, workdir: Path) -> float:
    from huey import SqliteHuey

    path = str(workdir / "huey.db")
    done = 0
    lock = threading.Lock()

    def register(huey: SqliteHuey) -> Any:
        @huey.task(name="bench")
        def bench() -> None:
            nonlocal done
            if kind != "noop":
                time.sleep(0.01)
            with lock:
                done += 1

        return bench

    # Fill without fsync (not timed), then drain with fsync like Conveyor's default.
    filler = SqliteHuey("bench", filename=path, fsync=False)
    fill = register(filler)
    for _ in range(n):
        fill()
    filler.storage.close()
    huey = SqliteHuey("bench", filename=path, fsync=True)
    register(huey)
    consumer = huey.create_consumer(workers=CONCURRENCY, worker_type="thread", periodic=False)
    began = time.perf_counter()
    consumer.start()
    while done < n:
        time.sleep(0.002)
    elapsed = time.perf_counter() - began
    consumer.stop(graceful=True)
    return elapsed


# Procrastinate (PostgreSQL) --------------------------------------------------------


def procrastinate_postgres(kind: str, n: int, workdir: Path) -> float:
    import procrastinate

    async def run() -> float:
        async with _postgres_schema() as schema:
            connector = procrastinate.PsycopgConnector(
                conninfo=POSTGRES_URL, kwargs={"options": f"-c search_path={schema}"}
            )
            app = procrastinate.App(connector=connector)

            @app.task(name="bench")
            async def bench() -> None:
                if kind != "noop":
                    await asyncio.sleep(0.01)

            async with app.open_async():
                await app.schema_manager.apply_schema_async()
                for start in range(0, n, 1000):
                    await bench.batch_defer_async(*({} for _ in range(start, min(n, start + 1000))))
                began = time.perf_counter()
                await app.run_worker_async(
                    concurrency=CONCURRENCY, wait=False, install_signal_handlers=False
                )
                return time.perf_counter() - began

    return uvloop.run(run())


# RabbitMQ --------------------------------------------------------------------------


def _rabbitmq_name(contender: str) -> str:
    """A queue name of this run's own (Dramatiq's rule: a letter first)."""
    return f"bench-{contender}-{secrets.token_hex(4)}"


async def _delete_rabbitmq(queues: Iterable[str], exchanges: Iterable[str] = ()) -> None:
    import aio_pika

    connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)
        for name in exchanges:
            await channel.exchange_delete(name)


def conveyor_rabbitmq(kind: str, n: int, workdir: Path) -> float:
    from conveyor.queues.rabbitmq.topology import Topology

    parts = urlsplit(RABBITMQ_URL)
    name = _rabbitmq_name("conveyor")
    spec = {
        "name": name,
        "type": "rabbitmq",
        "url": urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 5672}")),
        "username": unquote(parts.username or "guest"),
        "password": unquote(parts.password or "guest"),
    }
    url = f"sqlite:///{workdir / 'conveyor.db'}"
    try:
        return uvloop.run(_conveyor_drain(url, None, kind, n, workdir, spec))
    finally:
        uvloop.run(_delete_rabbitmq(queue for queue, _ in Topology(name).queues()))


def celery_rabbitmq(kind: str, n: int, workdir: Path) -> float:
    from celery import Celery

    name = _rabbitmq_name("celery")
    app = Celery("bench", broker=RABBITMQ_URL, set_as_current=False)
    app.conf.update(
        task_default_queue=name,  # with an exchange of the same name
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        worker_enable_remote_control=False,  # no pidbox queue
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    done = 0
    lock = threading.Lock()

    @app.task(name="bench")
    def bench() -> None:
        nonlocal done
        if kind != "noop":
            time.sleep(0.01)
        with lock:
            done += 1

    try:
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                bench.apply_async(producer=producer)
        worker = app.WorkController(
            hostname=f"{name}@bench",
            pool_cls="threads",
            concurrency=CONCURRENCY,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        began = time.perf_counter()
        thread = threading.Thread(target=worker.start, daemon=True)
        thread.start()
        while done < n:
            time.sleep(0.002)
        elapsed = time.perf_counter() - began
        worker.stop(in_sighandler=False)
        thread.join(timeout=60)
        return elapsed
    finally:
        uvloop.run(_delete_rabbitmq([name], [name]))


def dramatiq_rabbitmq(kind: str, n: int, workdir: Path) -> float:
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    name = _rabbitmq_name("dramatiq")
    broker = RabbitmqBroker(url=RABBITMQ_URL)
    done = 0
    lock = threading.Lock()

    @dramatiq.actor(actor_name="bench", queue_name=name, broker=broker)
    def bench() -> None:
        nonlocal done
        if kind != "noop":
            time.sleep(0.01)
        with lock:
            done += 1

    try:
        for _ in range(n):
            bench.send()
        worker = dramatiq.Worker(broker, worker_threads=CONCURRENCY)
        began = time.perf_counter()
        worker.start()
        while done < n:
            time.sleep(0.002)
        elapsed = time.perf_counter() - began
        worker.stop()
        broker.close()
        return elapsed
    finally:
        uvloop.run(_delete_rabbitmq([name, f"{name}.DQ", f"{name}.XQ"]))


def aio_pika_rabbitmq(kind: str, n: int, workdir: Path) -> float:
    """By hand: prefetch 10, each delivery handled in its own task, acked after it."""
    import aio_pika

    async def run(name: str) -> float:
        connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)
        async with connection:
            channel = await connection.channel()  # publisher confirms
            queue = await channel.declare_queue(name, durable=True)
            body = orjson.dumps({"handler": "bench"})
            for start in range(0, n, 500):
                await asyncio.gather(
                    *(
                        channel.default_exchange.publish(
                            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                            routing_key=name,
                        )
                        for _ in range(start, min(n, start + 500))
                    )
                )
            await channel.set_qos(prefetch_count=CONCURRENCY)
            done = 0
            drained = asyncio.Event()

            # aiormq runs every delivery's callback in a task of its own.
            async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                nonlocal done
                if kind != "noop":
                    await asyncio.sleep(0.01)
                await message.ack()
                done += 1
                if done == n:
                    drained.set()

            began = time.perf_counter()
            tag = await queue.consume(handle)
            await drained.wait()
            elapsed = time.perf_counter() - began
            await queue.cancel(tag)
        return elapsed

    name = _rabbitmq_name("aio-pika")
    try:
        return uvloop.run(run(name))
    finally:
        uvloop.run(_delete_rabbitmq([name]))


# Plumbing --------------------------------------------------------------------------

CONTENDERS: dict[str, Callable[[str, int, Path], float]] = {
    "conveyor-memory": conveyor_memory,
    "conveyor-sqlite": conveyor_sqlite,
    "huey-sqlite": huey_sqlite,
    "conveyor-postgres": conveyor_postgres,
    "procrastinate-postgres": procrastinate_postgres,
    "conveyor-rabbitmq": conveyor_rabbitmq,
    "celery-rabbitmq": celery_rabbitmq,
    "dramatiq-rabbitmq": dramatiq_rabbitmq,
    "aio-pika-rabbitmq": aio_pika_rabbitmq,
}


class _postgres_schema:
    """A fresh PostgreSQL schema for one contender, dropped afterwards."""

    async def __aenter__(self) -> str:
        import asyncpg

        self.name = f"bench_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'CREATE SCHEMA "{self.name}"')
        finally:
            await conn.close()
        return self.name

    async def __aexit__(self, *_: object) -> None:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
        finally:
            await conn.close()


def measure(name: str, kind: str, n: int) -> float:
    """Run one contender in a fresh interpreter; its drain time in seconds."""
    command = [sys.executable, __file__, "--child", name, "--handler", kind, "--messages", str(n)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{name} ({kind}) failed:\n{result.stderr[-3000:]}")
    return float(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def child(name: str, kind: str, n: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as workdir:
        seconds = CONTENDERS[name](kind, n, Path(workdir))
    print(json.dumps({"seconds": seconds}))


def drain_table(n: int, rounds: int, sections: dict[str, list[str]]) -> None:
    """Contenders take turns, round after round (the disk's fsync rate drifts on a
    shared machine); each row shows the median rate and ours divided by it."""
    print(f"\nDrain rate, {n} messages, concurrency {CONCURRENCY}, median of {rounds} rounds")
    header = (
        f"{'section':<24}{'handler':<14}{'contender':<24}{'msg/s':>8}{'min-max':>13}{'ours/it':>9}"
        f"  {'goal'}"
    )
    print(header)
    print("-" * len(header))
    for section, names in sections.items():
        for kind in HANDLERS:
            rates: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(rounds):
                for name in names:
                    rates[name].append(n / measure(name, kind, n))
            ours = statistics.median(rates[names[0]])
            for name in names:
                rate = statistics.median(rates[name])
                spread = f"{min(rates[name]):.0f}-{max(rates[name]):.0f}"
                ratio = f"{ours / rate:.2f}x" if name != names[0] else ""
                goal = GOALS.get(name)
                verdict = ""
                if goal is not None:
                    verdict = f"  >= {goal}x {'met' if ours / rate >= goal else 'MISSED'}"
                print(
                    f"{section:<24}{kind:<14}{name:<24}{rate:>8.0f}{spread:>13}{ratio:>9}{verdict}",
                    flush=True,
                )


# Worker memory on a large backlog ----------------------------------------------------


async def _prepare_rss(workdir: Path, n: int) -> str:
    platform = await _conveyor_platform(f"sqlite:///{workdir / 'conveyor.db'}", workdir, None)
    async with platform:
        queue = await _fill(platform, n, EMBEDDED)
    return str(queue.name)


async def _watch(workdir: Path, pid: int, n: int) -> list[tuple[float, int, float]]:
    """(seconds, messages left, RSS MiB) every second until the backlog is drained."""
    import psutil

    watched = psutil.Process(pid)
    began = time.perf_counter()
    samples: list[tuple[float, int, float]] = []
    platform = await _conveyor_platform(f"sqlite:///{workdir / 'conveyor.db'}", workdir, None)
    async with platform:
        backend = await platform.backends.get(await platform.queues.get_by_name("bench"))
        left = n
        while left > 0:
            await asyncio.sleep(1.0)
            stats = await backend.stats()
            left = (stats.ready or 0) + (stats.in_flight or 0) + (stats.delayed or 0)
            rss = watched.memory_info().rss / 2**20
            samples.append((time.perf_counter() - began, left, rss))
    return samples


def rss_table(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        name = uvloop.run(_prepare_rss(workdir, n))
        (workdir / "bench_handlers.py").write_text(
            "from conveyor import handler\n\n"
            '@handler("bench", auto_ack=True)\n'
            "async def bench(context):\n    pass\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        env |= {
            "CONVEYOR_DATA_DIR": str(workdir),
            "CONVEYOR_DATABASE_URL": f"sqlite:///{workdir / 'conveyor.db'}",
            "CONVEYOR_SECRET_KEY": "bench",
            "CONVEYOR_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-m", "conveyor", "worker", "--queue", name]
        command += ["--handlers", str(workdir / "bench_handlers.py")]
        process = subprocess.Popen(command, env=env, cwd=workdir)
        try:
            samples = uvloop.run(_watch(workdir, process.pid, n))
        finally:
            process.terminate()
            process.wait(timeout=60)
    elapsed = samples[-1][0]
    print(f"\nconveyor worker on a {n}-message backlog (SQLite): drained in {elapsed:.0f} s")
    print(f"{'drained':>9}{'RSS MiB':>10}")
    for fraction in (0.1, 0.25, 0.5, 0.75, 1.0):
        at = next(s for s in samples if n - s[1] >= fraction * n)
        print(f"{fraction:>9.0%}{at[2]:>10.1f}")
    print(f"peak RSS {max(s[2] for s in samples):.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss-messages", type=int, default=50_000, help="0 to skip")
    parser.add_argument("--section", action="append", choices=list(SECTIONS))
    parser.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--handler", choices=HANDLERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.handler, args.messages)
        return
    sections = {s: SECTIONS[s] for s in args.section} if args.section else SECTIONS
    drain_table(args.messages, args.rounds, sections)
    if args.rss_messages:
        rss_table(args.rss_messages)


if __name__ == "__main__":
    main()
