"""SQS publish throughput: our backend vs raw aiobotocore, and the batch endpoint vs singles.

Against the SQS-compatible server at CONVEYOR_TEST_SQS_ENDPOINT; when it is unset, a
moto_server is started on a free port, without its count of the queue's messages on
every send (`moto_uncounted.py`: that count makes each send cost time in proportion to
the queue's length, which SQS does not, and which swamps what batching saves;
`--moto-as-is` keeps it). Each measurement publishes to a fresh, empty queue (moto slows
down as a queue fills up, so a shared queue would favour whoever goes first); rounds
alternate ours and the peer in the same run; the table shows the median.

1. Backend: `SQSBackend.publish` vs `client.send_message` with the same body and the
   same message attributes, one at a time and 20 in flight; `publish_batch(100)` vs
   10 concurrent `send_message_batch` calls of 10 (what ours does on a standard queue).
2. HTTP: `POST …/publish-batch` with 100 messages vs `POST …/publish` per message
   (one at a time and 20 in flight), in process through the ASGI app (SQLite registry).

Run from the repository root: `.venv/bin/python benchmarks/sqs_publish.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop
from aiobotocore.session import get_session

from conveyor.config import Settings
from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.model import Credentials, Queue, QueueOptions, QueueType
from conveyor.queues.sqs import SQSBackend
from conveyor.queues.sqs.codec import encode
from conveyor.server import create_app

PAYLOAD = {
    "handler": "send_email",
    "to": "ana.silva@example.com",
    "subject": "Your order 12345",
    "order": {"id": 12345, "total": "99.90", "items": 3},
}
ACCOUNT, REGION, ACCESS_KEY, SECRET_KEY = "123456789012", "us-east-1", "bench", "bench-secret"
IN_FLIGHT = 20
#: Given a fresh queue's URL, returns a function that publishes n messages to it.
Setup = Callable[[str], AsyncIterator[Callable[[int], Awaitable[None]]]]


@contextmanager
def sqs_endpoint(*, moto_as_is: bool) -> Iterator[str]:
    endpoint = os.environ.get("CONVEYOR_TEST_SQS_ENDPOINT")
    if endpoint:
        yield endpoint.rstrip("/")
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if moto_as_is:
        command = [str(Path(sys.executable).with_name("moto_server"))]
    else:  # without moto's count of the queue's messages on every send
        command = [sys.executable, str(Path(__file__).with_name("moto_uncounted.py"))]
    process = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait()


def raw_client(endpoint: str) -> Any:
    return get_session().create_client(
        "sqs",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def sqs_queue(name: str, url: str) -> Queue:
    now = datetime.now(UTC)
    return Queue(
        id=secrets.token_hex(10), name=name, type=QueueType.SQS, url=url,
        username=ACCESS_KEY, has_password=True, region=REGION, description=None,
        options=QueueOptions(), created_at=now, updated_at=now,
    )  # fmt: skip


def message() -> OutgoingMessage:
    return OutgoingMessage(body=orjson.dumps(PAYLOAD))


def raw_params() -> dict[str, Any]:
    """The same send as ours: the same body and the same message attributes."""
    return encode(message(), fifo=False).params()


async def concurrently(count: int, one: Callable[[], Awaitable[Any]]) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def bounded() -> None:
        async with gate:
            await one()

    await asyncio.gather(*(bounded() for _ in range(count)))


class Bench:
    def __init__(self, raw: Any, rounds: int, count: int) -> None:
        self.raw, self.rounds, self.count = raw, rounds, count

    async def rate(self, setup: Setup) -> float:
        """Messages/s of one run on a fresh queue (setting up is not timed)."""
        name = f"bench-{secrets.token_hex(5)}"
        url = (await self.raw.create_queue(QueueName=name))["QueueUrl"]
        try:
            async with asynccontextmanager(setup)(url) as publish:
                await publish(10)  # warm: connections, models, caches
                started = time.perf_counter()
                await publish(self.count)
                return self.count / (time.perf_counter() - started)
        finally:
            await self.raw.delete_queue(QueueUrl=url)

    async def compare(self, ours: Setup, peer: Setup) -> tuple[float, float]:
        mine, theirs = [], []
        for _ in range(self.rounds):
            mine.append(await self.rate(ours))
            theirs.append(await self.rate(peer))
        return statistics.median(mine), statistics.median(theirs)


def backend_setups(raw: Any) -> dict[str, tuple[Setup, Setup]]:
    credentials = Credentials(ACCESS_KEY, SECRET_KEY)

    def ours(kind: str) -> Setup:
        async def setup(url: str) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
            backend = SQSBackend(sqs_queue(url.rsplit("/", 1)[1], url), credentials)
            await backend.open()

            async def publish(n: int) -> None:
                if kind == "one":
                    for _ in range(n):
                        await backend.publish(message())
                elif kind == "many":
                    await concurrently(n, lambda: backend.publish(message()))
                else:
                    for start in range(0, n, 100):
                        await backend.publish_batch([message() for _ in range(min(100, n - start))])

            try:
                yield publish
            finally:
                await backend.close()

        return setup

    def peer(kind: str) -> Setup:
        async def setup(url: str) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
            async def publish(n: int) -> None:
                if kind == "one":
                    for _ in range(n):
                        await raw.send_message(QueueUrl=url, **raw_params())
                elif kind == "many":
                    await concurrently(n, lambda: raw.send_message(QueueUrl=url, **raw_params()))
                else:  # what publish_batch does on a standard queue: 10 calls of 10 at once
                    for start in range(0, n, 100):
                        sizes = [min(10, n - s) for s in range(start, min(n, start + 100), 10)]
                        await asyncio.gather(*(send_10(size) for size in sizes))

            async def send_10(size: int) -> None:
                entries = [{"Id": str(i), **raw_params()} for i in range(size)]
                await raw.send_message_batch(QueueUrl=url, Entries=entries)

            yield publish

        return setup

    return {
        "publish, 1 at a time": (ours("one"), peer("one")),
        f"publish, {IN_FLIGHT} in flight": (ours("many"), peer("many")),
        "publish_batch(100) vs 10 batch calls of 10": (ours("batch"), peer("batch")),
    }


def http_setups(platform: Platform, endpoint: str) -> dict[str, tuple[Setup, Setup]]:
    transport = httpx.ASGITransport(app=create_app(platform))

    def via_http(kind: str) -> Setup:
        async def setup(url: str) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
            name = url.rsplit("/", 1)[1]
            queue = await platform.queues.create(
                {"name": name, "type": "sqs", "url": url, "username": ACCESS_KEY,
                 "password": SECRET_KEY, "region": REGION}
            )  # fmt: skip
            _, token = await platform.keys.create("bench", ["publish"])
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

                async def post_one() -> None:
                    path = f"/api/v1/zstorage/queue/{queue.id}/publish"
                    response = await client.post(path, json=PAYLOAD, headers=headers)
                    assert response.status_code == 200, response.text

                async def publish(n: int) -> None:
                    if kind == "one":
                        for _ in range(n):
                            await post_one()
                    elif kind == "many":
                        await concurrently(n, post_one)
                    else:
                        path = f"/api/v1/zstorage/queue/{queue.id}/publish-batch"
                        for start in range(0, n, 100):
                            body = {"messages": [PAYLOAD] * min(100, n - start)}
                            response = await client.post(path, json=body, headers=headers)
                            assert response.status_code == 200, response.text

                yield publish
            await platform.backends.discard(queue.id)

        return setup

    return {
        "HTTP publish-batch(100) vs publish, 1 at a time": (via_http("batch"), via_http("one")),
        f"HTTP publish-batch(100) vs publish, {IN_FLIGHT} in flight": (
            via_http("batch"),
            via_http("many"),
        ),
    }


async def measure(endpoint: str, rounds: int, count: int) -> list[tuple[str, float, float]]:
    rows = []
    async with raw_client(endpoint) as raw:
        bench = Bench(raw, rounds, count)
        for label, (ours, peer) in backend_setups(raw).items():
            rows.append((label, *await bench.compare(ours, peer)))
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
                for label, (ours, peer) in http_setups(platform, endpoint).items():
                    rows.append((label, *await bench.compare(ours, peer)))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--moto-as-is",
        action="store_true",
        help="moto_server unchanged: each send counts the queue's messages (moto_uncounted.py)",
    )
    args = parser.parse_args()
    with sqs_endpoint(moto_as_is=args.moto_as_is) as endpoint:
        rows = await measure(endpoint, args.rounds, args.messages)
    if os.environ.get("CONVEYOR_TEST_SQS_ENDPOINT"):
        server = os.environ["CONVEYOR_TEST_SQS_ENDPOINT"]
    elif args.moto_as_is:
        server = "moto_server as is"
    else:
        server = "moto_server without its message count on every send (moto_uncounted.py)"
    print(f"\nSQS publish, messages/s, median of {args.rounds} rounds of {args.messages}; {server}")
    print(f"{'mode':<52} {'ours':>8} {'peer':>8} {'ours/peer':>10}")
    for label, ours, peer in rows:
        print(f"{label:<52} {ours:>8.0f} {peer:>8.0f} {ours / peer:>9.2f}x")
    print("peer: raw aiobotocore (same body and attributes); HTTP rows: single publishes")
    peer = {label: theirs for label, _, theirs in rows}
    raw_batches = peer["publish_batch(100) vs 10 batch calls of 10"]
    print(
        "what the server allows batches, raw client alone: 10 batch calls of 10 / one at a "
        f"time = {raw_batches / peer['publish, 1 at a time']:.2f}x, / {IN_FLIGHT} in flight = "
        f"{raw_batches / peer[f'publish, {IN_FLIGHT} in flight']:.2f}x"
    )


if __name__ == "__main__":
    uvloop.run(main())
