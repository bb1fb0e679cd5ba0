"""Custom table page latency over 100,000 records, beside the records API running the
same query.

For SQLite and PostgreSQL: seeds `turma` (20 records, named by `nome`) and `estudante`
(100,000 records, `idade` indexed), and a page `adultos` (columns nome, turma (a
reference, shown by its display field), idade; fixed filters `ativo = true and idade >=
18`; sorted by `-idade`; 50 a page). Starts `conveyor serve` (one process), signs in and
requests each view of the page sequentially after a warm-up; prints p50/p95/p99/max per
view, the records API's same query as its peer (`[peer]` rows), and the CSV export of
the whole page (about 40,000 records) as records per second. Goal: p95 < 100 ms.

Run from the repository root: `.venv/bin/python benchmarks/pages.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from pathlib import Path

import httpx
from backoffice_pages import (
    PASSWORD,
    POSTGRES_URL,
    USER,
    Row,
    free_port,
    pg_schema,
    serve,
    settings_of,
    sign_in,
    timed,
)

from conveyor.platform import Platform

RECORDS = 100_000
GOAL_P95_MS = 100.0
PAGE = {
    "slug": "adultos",
    "title": "Adultos",
    "columns": ["nome", "turma", {"field": "idade", "label": "Anos"}],
    "sort": "-idade",
    "filters": [
        {"field": "ativo", "op": "eq", "value": True},
        {"field": "idade", "op": "gte", "value": 18},
    ],
    "user_filters": ["nome", "turma"],
    "page_size": 50,
    "sections": [{"title": "Dados", "fields": ["nome", "idade", "ativo"]},
                 {"title": "Escola", "fields": ["turma"]}],
    "hidden": {"status": "novo"},
}  # fmt: skip
PAGE_URL = "/admin/tables/estudante/pages/adultos"
API = "/api/v1/zstorage/tables/estudante/records"
FIXED = "ativo=true&idade[gte]=18"
#: Each view of the page, and the records API query it runs (with the count it shows).
VIEWS = [
    ("", "sort=-idade"),
    ("?page=200", "sort=-idade&page=200"),
    ("?sort=nome", "sort=nome"),
    ("?q=aluno+4242", "q=aluno+4242&sort=-idade"),
    ("?nome[startswith]=Aluno+77", "nome[startswith]=Aluno+77&sort=-idade"),
    ("?turma=3", "turma=3&sort=-idade"),
]


async def seed(env: dict[str, str]) -> str:
    platform = Platform(settings_of(env))
    await platform.migrate()
    async with platform:
        await platform.users.create(USER, PASSWORD)
        storage = platform.storage
        await storage.tables.create({"name": "turma", "fields": [{"name": "nome", "type": "text"}]})
        await storage.tables.update("turma", {"display_field": "nome"})
        await storage.records.create_many("turma", [{"nome": f"Turma {n}"} for n in range(20)])
        await storage.tables.create(
            {
                "name": "estudante",
                "fields": [
                    {"name": "nome", "type": "text", "required": True, "searchable": True},
                    {"name": "idade", "type": "integer", "indexed": True},
                    {"name": "turma", "type": "reference", "table": "turma"},
                    {"name": "status", "type": "select", "choices": ["novo", "antigo"]},
                    {"name": "ativo", "type": "boolean"},
                ],
            }
        )
        started = time.perf_counter()
        for start in range(0, RECORDS, 1000):
            batch = [student(n) for n in range(start, start + 1000)]
            await storage.records.create_many("estudante", batch)
        print(f"  {RECORDS:,} records in {time.perf_counter() - started:.0f} s", flush=True)
        await storage.pages.create("estudante", PAGE)
        _, key = await platform.keys.create("bench", ["admin", "storage:read"])
        return key


def student(n: int) -> dict[str, object]:
    return {
        "nome": f"Aluno {n}",
        "idade": 10 + n % 40,
        "turma": 1 + n % 20,
        "status": "antigo",
        "ativo": n % 2 == 0,
    }


def run_database(name: str, env: dict[str, str], requests: int) -> list[Row]:
    key = asyncio.run(seed(env))
    port = free_port()
    server = serve(env, port)
    rows = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            sign_in(client)
            api = {"Authorization": f"Bearer {key}"}
            for view, query in VIEWS:
                api_path = f"{API}?{FIXED}&{query}&limit=50&count=true"
                timed(client, "GET", PAGE_URL + view, 10)  # warm-up
                timed(client, "GET", api_path, 10, headers=api)
                samples = timed(client, "GET", PAGE_URL + view, requests)
                rows.append(Row.of(f"{name}: page {view or '(first)'}", samples))
                peer = timed(client, "GET", api_path, requests, headers=api)
                rows.append(Row.of(f"{name}: API  {view or '(first)'}  [peer]", peer))
            started = time.perf_counter()
            export = client.get(PAGE_URL + "/export.csv")
            spent = time.perf_counter() - started
            exported = export.text.count("\n") - 1
            assert exported == int(export.headers["x-total-count"]), "export and count differ"
            print(f"  {name}: CSV export of {exported:,} records in {spent:.2f} s "
                  f"({exported / spent:,.0f} records/s)", flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="per view, sequential")
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    args = parser.parse_args()
    databases = args.databases.split(",")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in databases:
            rows += run_database("SQLite", base_env | {
                "CONVEYOR_DATA_DIR": tmp,
                "CONVEYOR_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                "CONVEYOR_SECRET_KEY": "bench",
            }, args.requests)  # fmt: skip
        if "postgresql" in databases:
            schema = f"bench_{secrets.token_hex(4)}"
            asyncio.run(pg_schema("CREATE", schema))
            try:
                rows += run_database("PostgreSQL", base_env | {
                    "CONVEYOR_DATA_DIR": str(Path(tmp) / "pg"),
                    "CONVEYOR_DATABASE_URL": POSTGRES_URL,
                    "CONVEYOR_DATABASE_SCHEMA": schema,
                    "CONVEYOR_SECRET_KEY": "bench",
                }, args.requests)  # fmt: skip
            finally:
                asyncio.run(pg_schema("DROP", schema))
    print(f"\npage `adultos` over {RECORDS:,} records, {args.requests} sequential requests "
          "per view, one server process\n")  # fmt: skip
    width = max(len(r.label) for r in rows)
    print(f"{'view':{width}} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for r in rows:
        print(f"{r.label:{width}} {r.p50:7.1f} {r.p95:7.1f} {r.p99:7.1f} {r.worst:7.1f}")
    pages = [r for r in rows if not r.label.endswith("[peer]")]
    worst = max(pages, key=lambda r: r.p95)
    verdict = "met" if worst.p95 < GOAL_P95_MS else "NOT met"
    print(f"\nslowest view at p95: {worst.label} {worst.p95:.1f} ms "
          f"(goal < {GOAL_P95_MS:g} ms: {verdict})")  # fmt: skip


if __name__ == "__main__":
    main()
