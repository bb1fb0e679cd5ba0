"""ZStorage benchmarks (run on demand, not part of the test suite).

    .venv/bin/python benchmarks/storage_bench.py [--rows 1000000] [--rounds 3]
        [--seconds 10] [--minimal PATH]

1. Record creates on `conveyor serve` beside the yardstick (`yardstick.py`:
   minimal_app.py's `POST /records`, the same record, one durable INSERT), then bulk
   writes of 1000 records a request; wrk, alternating rounds, SQLite and PostgreSQL.
2. Filtered, sorted, paginated queries over `--rows` rows in PostgreSQL, through the
   API, with the field indexed: p50/p99 of the first page, of pages deep in a cursor
   walk, and of an offset page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import sqlalchemy as sa
from yardstick import DEFAULT_MINIMAL, RECORD, Load, conveyor, minimal, need_wrk, wrk

from conveyor.config import Settings
from conveyor.platform import Platform
from conveyor.server import create_app

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TABLE = {
    "name": "estudante",
    "fields": [
        {"name": "nome", "type": "text", "required": True, "searchable": True},
        {"name": "idade", "type": "integer", "min": 0, "indexed": True},
        {"name": "email", "type": "email"},
        {"name": "saldo", "type": "decimal", "scale": 2},
    ],
    "rules": [{"name": "adult", "expression": "record.idade >= 18", "message": "18+"}],
}
RECORDS = "/api/v1/zstorage/tables/estudante/records"
BULK = 1000


@asynccontextmanager
async def platform_on(kind: str) -> AsyncIterator[Platform]:
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if kind == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            url, schema = POSTGRES_URL, f"bench_{secrets.token_hex(4)}"
            conn = await asyncpg.connect(POSTGRES_URL)
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.close()
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=f"{tmp}/data",  # type: ignore[arg-type]
            database_url=url,
            database_schema=schema,
            secret_key="bench",  # type: ignore[arg-type]
        ).resolved()
        platform = Platform(settings)
        await platform.migrate()
        try:
            async with platform:
                yield platform
        finally:
            if schema:
                conn = await asyncpg.connect(POSTGRES_URL)
                await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
                await conn.close()


@asynccontextmanager
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    _, token = await platform.keys.create("bench", ["admin"])
    transport = httpx.ASGITransport(app=create_app(platform))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers=headers
    ) as client:
        yield client


def row(i: int) -> dict[str, Any]:
    return {"nome": f"Aluno {i}", "idade": 18 + i % 60, "email": f"a{i}@x.io", "saldo": "10.50"}


def writes(database: str, rounds: int, seconds: int, app: Path) -> list[tuple[str, Load]]:
    """Record creates on `conveyor serve` beside the yardstick's `POST /records` (the
    same three-field record, one durable INSERT), and bulk writes of 1000, by wrk in
    alternating rounds; the median round of each."""
    bulk_body = "[" + ",".join([RECORD] * BULK) + "]"
    loads: dict[str, list[Load]] = {"create": [], "bulk": [], "minimal": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with conveyor(database, work) as ours, minimal(database, work, app) as yardstick:
            records = f"{ours.base}/api/v1/zstorage/tables/estudante/records"
            runs: dict[str, Callable[[int], Load]] = {
                "create": lambda s: wrk(records, RECORD, key=ours.key, seconds=s),
                # Four at a time: fifty bulk writes in flight would queue past wrk's timeout.
                "bulk": lambda s: wrk(
                    f"{records}:bulk", bulk_body, key=ours.key, seconds=s, connections=4
                ),
                "minimal": lambda s: wrk(f"{yardstick}/records", RECORD, seconds=s),
            }
            for measure in runs.values():
                measure(2)  # warm-up
            for _ in range(rounds):
                for name, measure in runs.items():
                    loads[name].append(measure(seconds))
    return [
        (name, sorted(runs_, key=lambda x: x.rps)[len(runs_) // 2]) for name, runs_ in loads.items()
    ]


async def load(platform: Platform, rows: int) -> None:
    table = await platform.storage.tables.get("estudante")
    g = sa.func.generate_series(1, rows).table_valued("g").alias("g")
    n = g.c.g
    source = sa.select(
        sa.func.now(),
        sa.func.now(),
        sa.literal("Aluno ") + sa.cast(n, sa.Text),
        18 + n % 60,
        sa.literal("a") + sa.cast(n, sa.Text) + "@x.io",
        sa.cast(n % 1000, sa.Numeric(18, 2)),
    ).select_from(g)
    columns = ["created_at", "updated_at", "nome", "idade", "email", "saldo"]
    async with platform.db.write() as conn:
        await conn.execute(sa.insert(table.sql).from_select(columns, source))
        await conn.execute(sa.text(f"ANALYZE {table.sql_name}"))


async def timings(samples: int, call: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    spent = []
    for i in range(samples):
        started = time.perf_counter()
        await call(i)
        spent.append((time.perf_counter() - started) * 1000)
    spent.sort()
    return statistics.median(spent), spent[int(len(spent) * 0.99) - 1]


async def queries(rows: int, samples: int) -> list[tuple[str, float, float]]:
    results = []
    async with platform_on("postgresql") as platform, api(platform) as client:
        assert (await client.post("/api/v1/zstorage/tables", json=TABLE)).status_code == 201
        started = time.perf_counter()
        await load(platform, rows)
        print(f"loaded {rows:,} rows in {time.perf_counter() - started:.1f}s")

        async def get(params: dict[str, Any]) -> dict[str, Any]:
            response = await client.get(RECORDS, params=params)
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        async def first_page(i: int) -> None:
            low = 18 + i % 50
            body = await get({"idade[gte]": low, "sort": "-idade", "limit": 50})
            assert len(body["items"]) == 50

        cursors: list[str] = []
        params = {"idade[gte]": 20, "idade[lt]": 70, "sort": "idade", "limit": 50}
        body = await get(params)
        for _ in range(samples):
            cursors.append(body["next_cursor"])
            body = await get(params | {"cursor": body["next_cursor"]})

        async def deep_page(i: int) -> None:
            assert len((await get(params | {"cursor": cursors[i]}))["items"]) == 50

        async def offset_page(i: int) -> None:
            body = await get({"idade[gte]": 30, "sort": "-idade", "limit": 50, "page": 1 + i})
            assert len(body["items"]) == 50

        async def search(i: int) -> None:
            body = await get({"q": f"aluno {1000 + i}", "limit": 50})
            assert body["items"]

        await first_page(0)
        for name, call in (
            ("filter idade[gte] + sort -idade, first page of 50", first_page),
            ("same, pages deep in a cursor walk (keyset)", deep_page),
            ("same, page=N (offset, N up to samples)", offset_page),
            ("q= full-text, first page of 50 (ranked)", search),
        ):
            p50, p99 = await timings(samples, call)
            results.append((name, p50, p99))
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--minimal", type=Path, default=DEFAULT_MINIMAL)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()

    need_wrk()
    print("\n## Writes: records per second, `conveyor serve` beside minimal_app.py\n")
    print(
        f"wrk -t1 -c50 (bulk: -c4), {args.seconds} s a run, "
        f"median of {args.rounds} alternating rounds\n"
    )
    print("| database | route | req/s | records/s | p99 ms | vs minimal |")
    print("|---|---|---|---|---|---|")
    for kind in ("sqlite", "postgresql"):
        measured = dict(writes(kind, args.rounds, args.seconds, args.minimal))
        yardstick = measured["minimal"].rps
        for name, label, per in (
            ("create", "POST …/records (Conveyor)", 1),
            ("bulk", f"POST …/records:bulk of {BULK} (Conveyor)", BULK),
            ("minimal", "POST /records (minimal_app.py)", 1),
        ):
            load = measured[name]
            print(
                f"| {kind} | {label} | {load.rps:,.0f} | {load.rps * per:,.0f} | "
                f"{load.p99_ms:.1f} | {load.rps * per / yardstick:.2f}x |"
            )

    print(f"\n## Queries over {args.rows:,} rows in PostgreSQL, through the API\n")
    results = await queries(args.rows, args.samples)
    print("| query | p50 ms | p99 ms |\n|---|---|---|")
    for name, p50, p99 in results:
        print(f"| {name} | {p50:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
