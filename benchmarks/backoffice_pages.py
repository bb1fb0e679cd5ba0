"""Back-office page latency with 50 queues, 20 tables and 100k records in one table,
beside the JSON API serving the same data.

For SQLite and PostgreSQL: seeds 50 embedded queues (1,000 ready messages, 50 dead
letters on one queue, 20 API keys), 20 tables (one, `people`, with 100,000 records and
a linked table with 1,000 outbox rows), 12 workers; starts `conveyor serve` (one
process), signs in as a back-office user and requests each page sequentially (after a
warm-up), then prints p50/p95/p99/max per page. Peers from the same server and run:
`GET /health` (the HTTP stack alone), `GET /api/v1/zstorage/queues` (the same 50
queues as JSON, without counts) and the records API running the same queries as the
record list pages (`[peer]` rows). Goal: every page under 100 ms at p95.

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
from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.model import Queue
from conveyor.workers import WorkerInfo

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
QUEUES = 50
TABLES = 20
RECORDS = 100_000
WORKERS = 12
CITIES = ["Lisbon", "Porto", "Braga", "Faro", "Coimbra", "Évora", "Aveiro", "Leiria"]
PEOPLE = {
    "name": "people",
    "label": "People",
    "fields": [
        {"name": "name", "type": "text", "required": True, "searchable": True, "max": 200},
        {"name": "email", "type": "email", "unique": True},
        {"name": "age", "type": "integer", "min": 0, "indexed": True},
        {"name": "city", "type": "select", "choices": CITIES, "indexed": True},
        {"name": "score", "type": "decimal", "scale": 2},
        {"name": "born", "type": "date"},
        {"name": "active", "type": "boolean"},
        {"name": "notes", "type": "text"},
    ],
    "rules": [{"name": "adult", "expression": "record.age >= 18", "message": "18+"}],
}
FIRST = ["ana", "bruno", "carla", "diogo", "eva", "filipe", "gil", "helena", "ines", "joao"]
LAST = ["silva", "santos", "costa", "pereira", "lima", "rocha", "alves", "sousa"]
USER, PASSWORD = "bench", "a long benchmark passphrase"
GOAL_P95_MS = 100.0


@dataclass(frozen=True)
class Seeded:
    queue_id: str
    admin_key: str
    record_id: int


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


#: The record list pages measured (on `people`, 100k records); the peer runs the same
#: query through the records API, with the count the page shows.
LIST_QUERIES = [
    "",
    "?age[gte]=40&city=Lisbon",
    "?sort=-age",
    "?sort=name",
    "?q=helena",
    "?q=helena+silva&age[gte]=30&sort=-age",
    "?page=200",
]


def api_query(query: str) -> str:
    return (query + "&" if query else "?") + "limit=50&count=true"


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
        _, admin_key = await platform.keys.create("bench-admin", ["admin", "storage:read"])
        record_id = await seed_tables(platform, queues[1])
        for n in range(WORKERS):
            info = WorkerInfo(f"w-{n}", f"host-{n % 3}", 1000 + n, "0.1.0",
                              [queues[n].name], ["bench", "other"], 10, 5.0)  # fmt: skip
            await platform.workers.register(info)
    return Seeded(queues[0].id, admin_key, record_id)


async def seed_tables(platform: Platform, queue: Queue) -> int:
    """20 tables: `people` with RECORDS records, `orders` linked to a queue."""
    storage = platform.storage
    await storage.tables.create(PEOPLE)
    started = time.perf_counter()
    for start in range(0, RECORDS, 1000):
        await storage.records.create_many("people", [person(n) for n in range(start, start + 1000)])
    print(f"  {RECORDS:,} records in {time.perf_counter() - started:.0f} s", flush=True)
    await storage.tables.create(
        {"name": "orders", "fields": [{"name": "person", "type": "reference", "table": "people"},
                                      {"name": "total", "type": "decimal"}]}
    )  # fmt: skip
    await platform.links.put("orders", queue.id, LinkSpec.parse("orders", {}))
    for start in range(0, 1000, 500):
        await storage.records.create_many(
            "orders", [{"person": n + 1, "total": "10.00"} for n in range(start, start + 500)]
        )
    for n in range(TABLES - 2):
        fields = [{"name": f"f{i}", "type": "text"} for i in range(5)]
        await storage.tables.create({"name": f"table_{n:02d}", "fields": fields})
    return RECORDS // 2


def person(n: int) -> dict[str, object]:
    first, last = FIRST[n % len(FIRST)], LAST[(n // len(FIRST)) % len(LAST)]
    return {
        "name": f"{first.title()} {last.title()} {n}",
        "email": f"{first}.{last}.{n}@example.com",
        "age": 18 + n % 70,
        "city": CITIES[n % len(CITIES)],
        "score": f"{n % 1000}.{n % 100:02d}",
        "born": f"{1950 + n % 60}-{1 + n % 12:02d}-{1 + n % 28:02d}",
        "active": n % 3 == 0,
        "notes": "A note about this person." if n % 5 == 0 else None,
    }


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
    qid, rid = seeded.queue_id, seeded.record_id
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
                ("GET", "/admin/tables", {}),
                ("GET", "/admin/tables/people/design", {}),
                ("GET", "/admin/tables/people/fields/new", {}),
                ("GET", "/admin/tables/people/fields/city/edit", {}),
                (
                    "POST",
                    "/admin/tables/people/rules/check",
                    {
                        "data": {
                            "csrf_token": csrf,
                            "expression": "record.age >= 18",
                            "sample": '{"age": 30, "name": "x"}',
                        },
                        "headers": {"X-Partial": "1"},
                    },
                ),
                *[("GET", f"/admin/tables/people{query}", {}) for query in LIST_QUERIES],
                ("GET", f"/admin/tables/people/records/{rid}", {}),
                ("GET", f"/admin/tables/people/records/{rid}/edit", {}),
                ("GET", "/admin/tables/people/records/new", {}),
                ("GET", "/admin/tables/orders/records/1", {}),
                ("GET", "/admin/tables/people/pick?q=hel", {"headers": {"X-Partial": "1"}}),
                ("GET", "/admin/workers", {}),
                ("GET", "/admin/workers/rows", {"headers": {"X-Partial": "1"}}),
                ("GET", "/admin/outbox", {}),
                ("GET", "/admin/outbox?status=sent&table=orders", {}),
            ]
            bearer = {"Authorization": f"Bearer {seeded.admin_key}"}
            records_api = "/api/v1/zstorage/tables/people/records"
            peers = [
                ("GET", "/health", {}),
                ("GET", "/api/v1/zstorage/queues", {"headers": bearer}),
                *[
                    ("GET", records_api + api_query(query), {"headers": bearer})
                    for query in LIST_QUERIES
                ],
            ]
            rows = []
            for method, path, kw in pages + peers:
                timed(client, method, path, max(requests // 10, 5), **kw)  # warm up
                label = f"{name}: {method} {path.replace(qid, '{id}')}"
                label = label.replace("/api/v1/zstorage/tables/people/records", "API records")
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
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    args = parser.parse_args()
    databases = args.databases.split(",")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_env = base_env | {
            "CONVEYOR_DATA_DIR": tmp,
            "CONVEYOR_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "CONVEYOR_SECRET_KEY": "bench",
        }
        if "sqlite" in databases:
            rows += run_database("SQLite", sqlite_env, args.requests)
        schema = f"bench_{secrets.token_hex(4)}"
        if "postgresql" in databases:
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
    print(
        f"\n{QUEUES} queues, {TABLES} tables ({RECORDS:,} records in `people`), "
        f"{args.requests} sequential requests per page, one server process\n"
    )
    width = max(len(r.label) for r in rows)
    print(f"{'page':{width}} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for r in rows:
        print(f"{r.label:{width}} {r.p50:7.1f} {r.p95:7.1f} {r.p99:7.1f} {r.worst:7.1f}")
    pages = [r for r in rows if not r.label.endswith("[peer]")]
    worst = max(pages, key=lambda r: r.p95)
    verdict = "met" if worst.p95 < GOAL_P95_MS else "NOT met"
    goal = f"goal < {GOAL_P95_MS:g} ms: {verdict}"
    print(f"\nslowest page at p95: {worst.label} {worst.p95:.1f} ms ({goal})")


if __name__ == "__main__":
    main()
