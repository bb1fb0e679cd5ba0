"""The outbox views with a million sent rows: the API's `/outbox` and the back-office page.

For SQLite and PostgreSQL: seeds `--sent` sent rows (default 1,000,000), 20 pending and
20 failed ones, then requests each view in-process (httpx over ASGI, one at a time, after
a warm-up) and prints p50/p95 per view. Peers from the same app and run: `GET /health`
(the HTTP stack alone) and the count the views used to make (`GROUP BY status` over the
whole table). Goal: every view under 100 ms at p95.

Run from the repository root: `.venv/bin/python benchmarks/outbox_views.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import sqlalchemy as sa

from conveyor.config import Settings
from conveyor.db.tables import outbox
from conveyor.platform import Platform
from conveyor.server import create_app

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
CHUNK = 10_000
PASSWORD = "a long benchmark passphrase"


async def seed(platform: Platform, sent: int) -> None:
    queue = await platform.queues.create({"name": "views", "type": "embedded"})

    def row(i: int, status: str) -> dict[str, object]:
        return {
            "queue_id": queue.id,
            "table_name": "orders",
            "record_id": str(i),
            "event": "create",
            "message_id": secrets.token_hex(16),
            "ordering_key": f"orders:{i}",
            "payload": '{"handler": "h"}',
            "status": status,
            "attempts": 0,
            "next_attempt_at": 0,
            "created_at": 0,
            "sent_at": 0 if status == "sent" else None,
        }

    statuses = ["sent"] * sent + ["pending"] * 20 + ["failed"] * 20
    for start in range(0, len(statuses), CHUNK):
        rows = [row(i, s) for i, s in enumerate(statuses[start : start + CHUNK], start)]
        async with platform.db.write() as conn:
            await conn.execute(sa.insert(outbox), rows)
        print(f"\r  seeded {start + len(rows):,} rows", end="", flush=True)
    print()
    # Keep the relay from touching the pending rows while we measure.
    await platform.stop_relay()


async def timed(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    for _ in range(3):
        await call()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def run(database: str, sent: int, n: int) -> list[tuple[str, str, float, float]]:
    data = tempfile.mkdtemp(prefix="outbox-views-")
    schema = None
    env = {"data_dir": data}
    if database == "postgresql":
        schema = f"bench_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(POSTGRES_URL)
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.close()
        env |= {"database_url": POSTGRES_URL, "database_schema": schema}
    settings = Settings(_env_file=None, **env).resolved()  # type: ignore[call-arg]
    platform = Platform(settings)
    await platform.migrate()
    rows: list[tuple[str, str, float, float]] = []
    try:
        async with platform:
            print(f"{database}: seeding")
            await seed(platform, sent)
            _, token = await platform.keys.create("bench", ["admin"])
            await platform.users.create("bench", PASSWORD)
            transport = httpx.ASGITransport(app=create_app(platform))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as web:
                form = (await web.get("/admin/login")).text
                csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
                signed = await web.post(
                    "/admin/login",
                    data={
                        "username": "bench",
                        "password": "a long benchmark passphrase",
                        "csrf_token": csrf,
                    },
                )
                assert signed.status_code == 303, signed.text
                api = {"Authorization": f"Bearer {token}"}
                views: dict[str, Callable[[], Awaitable[object]]] = {
                    "GET /health [peer]": lambda: web.get("/health"),
                    "GET /api/v1/zstorage/outbox": lambda: web.get(
                        "/api/v1/zstorage/outbox", headers=api
                    ),
                    "GET /api/v1/zstorage/outbox?status=failed": lambda: web.get(
                        "/api/v1/zstorage/outbox?status=failed", headers=api
                    ),
                    "GET /admin/outbox": lambda: web.get("/admin/outbox"),
                    "GET /admin/outbox?status=pending": lambda: web.get(
                        "/admin/outbox?status=pending"
                    ),
                    "GROUP BY status (the old count) [peer]": lambda: old_count(platform),
                }
                for name, call in views.items():
                    times = await timed(call, n)
                    p95 = statistics.quantiles(times, n=20)[-1]
                    rows.append((database, name, statistics.median(times), p95))
    finally:
        if schema is not None:
            conn = await asyncpg.connect(POSTGRES_URL)
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()
    return rows


async def old_count(platform: Platform) -> None:
    query = sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
    async with platform.db.read() as conn:
        (await conn.execute(query)).all()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sent", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--database", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    databases = [args.database] if args.database else ["sqlite", "postgresql"]
    rows = []
    for database in databases:
        rows += await run(database, args.sent, args.requests)
    print(f"\n{args.sent:,} sent rows, {args.requests} requests per view")
    print("| database | view | p50 ms | p95 ms |\n|---|---|---|---|")
    for database, name, p50, p95 in rows:
        print(f"| {database} | {name} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
