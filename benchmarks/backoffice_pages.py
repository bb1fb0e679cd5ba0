"""Back-office page latency with 50 queues, beside the JSON API serving the same data.

For SQLite and PostgreSQL: seeds 50 embedded queues (1,000 ready messages, 50 dead
letters on one queue, 20 API keys), starts `conveyor serve` (one process), signs in
as a back-office user and requests each page sequentially (after a warm-up), then
prints p50/p95/p99/max per page. Peers from the same server and run: `GET /health`
(the HTTP stack alone) and `GET /api/v1/zstorage/queues` (the same 50 queues as JSON,
without counts). Goal: every page under 100 ms at p95.

Run from the repository root: `.venv/bin/python benchmarks/backoffice_pages.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from conveyor.config import Settings
from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
QUEUES = 50
USER, PASSWORD = "bench", "a long benchmark passphrase"
GOAL_P95_MS = 100.0


@dataclass(frozen=True)
class Seeded:
    queue_id: str
    admin_key: str


@dataclass(frozen=True)
class Row:
    label: str
    p50: float
    p95: float
    p99: float
    worst: float

    @classmethod
    def of(cls, label: str, samples_ms: list[float]) -> Row:
        cuts = statistics.quantiles(samples_ms, n=100)
        return cls(label, cuts[49], cuts[94], cuts[98], max(samples_ms))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(
        _env_file=None,
        **{  # type: ignore[arg-type]
            "database_url": env["CONVEYOR_DATABASE_URL"],
            "database_schema": env.get("CONVEYOR_DATABASE_SCHEMA"),
            "data_dir": env["CONVEYOR_DATA_DIR"],
        },
    ).resolved()


async def seed(env: dict[str, str]) -> Seeded:
    platform = Platform(settings_of(env))
    await platform.migrate()
    async with platform:
        await platform.users.create(USER, PASSWORD)
        queues = [
            await platform.queues.create(
                {"name": f"queue-{n:02d}", "type": "embedded", "description": f"Queue {n}"}
            )
            for n in range(QUEUES)
        ]
        for queue in queues:
            backend = await platform.backends.get(queue)
            await backend.publish_batch(
                [OutgoingMessage(body=b'{"handler": "bench", "n": %d}' % n) for n in range(20)]
            )
        busy = await platform.backends.get(queues[0])
        for delivery in await busy.receive(50):
            await busy.dead_letter(delivery, reason="handler raised: benchmark")
        for n in range(20):
            await platform.keys.create(f"service-{n}", ["publish"], [f"queue-{n:02d}"])
        _, admin_key = await platform.keys.create("bench-admin", ["admin"])
    return Seeded(queues[0].id, admin_key)


def serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def sign_in(client: httpx.Client) -> str:
    page = client.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    form = {"csrf_token": token.group(1), "username": USER, "password": PASSWORD}
    signed = client.post("/admin/login", data=form)
    assert signed.status_code == 303, signed.text
    keys = client.get("/admin/keys")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', keys.text)
    assert csrf, "no CSRF token on a signed-in page"
    return csrf.group(1)


def timed(client: httpx.Client, method: str, path: str, requests: int, **kw: object) -> list[float]:
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.request(method, path, **kw)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code < 400, (path, response.status_code)
    return samples


def run_database(name: str, env: dict[str, str], requests: int) -> list[Row]:
    seeded = asyncio.run(seed(env))
    port = free_port()
    server = serve(env, port)
    qid = seeded.queue_id
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            csrf = sign_in(client)
            pages = [
                ("GET", "/admin/", {}),
                ("GET", "/admin/queues", {}),
                ("GET", "/admin/queues?type=embedded", {}),
                ("GET", "/admin/queues/rows", {"headers": {"X-Partial": "1"}}),
                ("GET", f"/admin/queues/{qid}", {}),
                ("GET", f"/admin/queues/{qid}/counts", {"headers": {"X-Partial": "1"}}),
                ("GET", f"/admin/queues/{qid}/edit", {}),
                ("GET", "/admin/queues/new", {}),
                ("GET", f"/admin/queues/{qid}/dead-letters", {}),
                ("GET", "/admin/keys", {}),
                ("POST", f"/admin/queues/{qid}/check", {"data": {"csrf_token": csrf}}),
                (
                    "POST",
                    f"/admin/queues/{qid}/publish",
                    {"data": {"csrf_token": csrf, "message": '{"handler": "bench"}'}},
                ),
            ]
            bearer = {"Authorization": f"Bearer {seeded.admin_key}"}
            peers = [
                ("GET", "/health", {}),
                ("GET", "/api/v1/zstorage/queues", {"headers": bearer}),
            ]
            rows = []
            for method, path, kw in pages + peers:
                timed(client, method, path, max(requests // 10, 5), **kw)  # warm up
                label = f"{name}: {method} {path.replace(qid, '{id}')}"
                if (method, path, kw) in peers:
                    label += "  [peer]"
                rows.append(Row.of(label, timed(client, method, path, requests, **kw)))
            client.get("/admin/login")  # the anonymous page too
            rows.insert(0, Row.of(f"{name}: GET /admin/login", timed(
                httpx.Client(base_url=client.base_url), "GET", "/admin/login", requests
            )))  # fmt: skip
    finally:
        server.terminate()
        server.wait()
    return rows


async def pg_schema(action: str, schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'{action} SCHEMA "{schema}"' + (" CASCADE" if action == "DROP" else ""))
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="per page, sequential")
    args = parser.parse_args()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_env = base_env | {
            "CONVEYOR_DATA_DIR": tmp,
            "CONVEYOR_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "CONVEYOR_SECRET_KEY": "bench",
        }
        rows += run_database("SQLite", sqlite_env, args.requests)
        schema = f"bench_{secrets.token_hex(4)}"
        asyncio.run(pg_schema("CREATE", schema))
        try:
            pg_env = base_env | {
                "CONVEYOR_DATA_DIR": str(Path(tmp) / "pg"),
                "CONVEYOR_DATABASE_URL": POSTGRES_URL,
                "CONVEYOR_DATABASE_SCHEMA": schema,
                "CONVEYOR_SECRET_KEY": "bench",
            }
            rows += run_database("PostgreSQL", pg_env, args.requests)
        finally:
            asyncio.run(pg_schema("DROP", schema))
    print(f"\n{QUEUES} queues, {args.requests} sequential requests per page, one server process\n")
    print(f"{'page':58} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for r in rows:
        print(f"{r.label:58} {r.p50:7.1f} {r.p95:7.1f} {r.p99:7.1f} {r.worst:7.1f}")
    pages = [r for r in rows if not r.label.endswith("[peer]")]
    worst = max(pages, key=lambda r: r.p95)
    verdict = "met" if worst.p95 < GOAL_P95_MS else "NOT met"
    goal = f"goal < {GOAL_P95_MS:g} ms: {verdict}"
    print(f"\nslowest page at p95: {worst.label} {worst.p95:.1f} ms ({goal})")


if __name__ == "__main__":
    main()
