"""Publish API throughput and latency vs the same durable insert on a minimal route.

For SQLite and PostgreSQL: starts a server (uvicorn, httptools, uvloop; one process),
drives each route with wrk at concurrency 50 with a ~200-byte JSON body, and prints
requests/s and p50/p99 latency side by side. Then the HTTP layer alone: the bare FastAPI
app's own route served by our app, first in our router (only our middleware differs)
and last (behind all our routes), and our `/health` probe, against that bare app;
fresh servers taking turns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import socket
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

BODY = (
    '{"handler": "send_email", "to": "ana.silva@example.com", "subject": "Your order 12345", '
    '"order": {"id": 12345, "total": "99.90", "items": 3}, "locale": "pt-BR", "priority": 5}'
)
#: Rounds of the HTTP-layer comparison (fresh servers, taking turns).
HTTP_ROUNDS = 3
POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass
class Result:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(
    url: str,
    *,
    duration_s: int,
    headers: dict[str, str],
    body: str | None,
    connections: int = 50,
) -> Result:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = [f'wrk.method = "{"POST" if body else "GET"}"']
    if body:
        lines.append(f"wrk.body = [[{body}]]")
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _latency(re.search(r"50%\s+([\d.]+)(us|ms|s)", out))
    p99 = _latency(re.search(r"99%\s+([\d.]+)(us|ms|s)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    problems = ", ".join(
        p for p in (bad and f"{bad.group(1)} non-2xx", errors and errors.group(1)) if p
    )
    return Result("", rps, p50, p99, problems or "-")


def _latency(match: re.Match[str] | None) -> float:
    assert match, "wrk printed no latency distribution"
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def prepare(env: dict[str, str]) -> tuple[str, str]:
    settings = Settings(
        _env_file=None,
        **{  # type: ignore[arg-type]
            "database_url": env["CONVEYOR_DATABASE_URL"],
            "database_schema": env.get("CONVEYOR_DATABASE_SCHEMA"),
            "data_dir": env["CONVEYOR_DATA_DIR"],
        },
    ).resolved()
    platform = Platform(settings)
    await platform.migrate()
    async with platform:
        queue = await platform.queues.create({"name": "bench", "type": "embedded"})
        _, token = await platform.keys.create("bench", ["publish"])
    return queue.id, token


def serve(env: dict[str, str], port: int, factory: str = "create") -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"publish_server:{factory}", "--factory",
         "--port", str(port), "--no-access-log", "--log-level", "warning",
         "--loop", "uvloop", "--http", "httptools"],
        env=env,
        cwd=Path(__file__).parent,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the benchmark server did not start")


def run_database(name: str, env: dict[str, str], duration_s: int) -> list[Result]:
    queue_id, token = asyncio.run(prepare(env))
    port = free_port()
    server = serve(env, port)
    base = f"http://127.0.0.1:{port}"
    json_headers = {"Content-Type": "application/json"}
    auth = json_headers | {"Authorization": f"Bearer {token}"}
    runs = [
        (
            f"{name}: POST publish (ours)",
            f"{base}/api/v1/zstorage/queue/{queue_id}/publish",
            auth,
            BODY,
        ),
        (
            f"{name}: POST minimal durable insert",
            f"{base}/bench/minimal-insert/{queue_id}",
            json_headers,
            BODY,
        ),
    ]
    results = []
    try:
        for label, url, headers, body in runs:
            wrk(url, duration_s=2, headers=headers, body=body)  # warm up
            result = wrk(url, duration_s=duration_s, headers=headers, body=body)
            result.label = label
            results.append(result)
    finally:
        server.terminate()
        server.wait()
    return results


def run_http_layer(env: dict[str, str], duration_s: int) -> list[Result]:
    """`GET /health` on our app, the plain app's FastAPI route served by our app (first
    and last in our router), and the bare FastAPI app: fresh servers taking turns over
    `HTTP_ROUNDS` rounds; the median of each (the machine's drift over the run then
    hits all alike)."""
    cases = {
        f"GET /health (our stack, median of {HTTP_ROUNDS})": ("create", "/health"),
        f"GET same FastAPI route, first in ours (median of {HTTP_ROUNDS})": (
            "create",
            "/bench/fastapi-route-first",
        ),
        f"GET same FastAPI route, last in ours (median of {HTTP_ROUNDS})": (
            "create",
            "/bench/fastapi-route",
        ),
        f"GET plain FastAPI route (median of {HTTP_ROUNDS})": ("create_plain", "/health"),
    }
    samples: dict[str, list[Result]] = {label: [] for label in cases}
    for _ in range(HTTP_ROUNDS):
        for label, (factory, path) in cases.items():
            port = free_port()
            server = serve(env, port, factory)
            try:
                samples[label].append(measure(label, f"http://127.0.0.1:{port}{path}", duration_s))
            finally:
                server.terminate()
                server.wait()
    return [median(results) for results in samples.values()]


def median(results: list[Result]) -> Result:
    """The run with the median requests/s (an odd count of runs)."""
    return sorted(results, key=lambda r: r.rps)[len(results) // 2]


def measure(label: str, url: str, duration_s: int) -> Result:
    wrk(url, duration_s=2, headers={}, body=None)
    result = wrk(url, duration_s=duration_s, headers={}, body=None)
    result.label = label
    return result


async def pg_schema(action: str, schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'{action} SCHEMA "{schema}"' + (" CASCADE" if action == "DROP" else ""))
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    base_env["PYTHONPATH"] = str(Path(__file__).parent)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_env = base_env | {
            "CONVEYOR_DATA_DIR": tmp,
            "CONVEYOR_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "CONVEYOR_SECRET_KEY": "bench",
        }
        results += run_database("SQLite", sqlite_env, args.duration_s)
        http_layer = run_http_layer(sqlite_env, args.duration_s)
        schema = f"bench_{secrets.token_hex(4)}"
        asyncio.run(pg_schema("CREATE", schema))
        try:
            pg_env = base_env | {
                "CONVEYOR_DATA_DIR": tmp,
                "CONVEYOR_DATABASE_URL": POSTGRES_URL,
                "CONVEYOR_DATABASE_SCHEMA": schema,
                "CONVEYOR_SECRET_KEY": "bench",
            }
            results += run_database("PostgreSQL", pg_env, args.duration_s)
        finally:
            asyncio.run(pg_schema("DROP", schema))
    results += http_layer
    print(f"\nwrk -t2 -c50 -d{args.duration_s}s, body {len(BODY)} bytes, one server process\n")
    print(f"{'route':52} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors")
    for r in results:
        print(f"{r.label:52} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f}  {r.errors}")
    by_label = {r.label: r for r in results}
    for db in ("SQLite", "PostgreSQL"):
        ours, minimal = (
            by_label[f"{db}: POST publish (ours)"],
            by_label[f"{db}: POST minimal durable insert"],
        )
        print(f"{db}: publish / minimal insert = {ours.rps / minimal.rps:.2f}x (goal >= 0.8x)")
    probe, first, last, plain = http_layer
    print(f"HTTP layer: same FastAPI route first in ours / plain = {first.rps / plain.rps:.2f}x "
          "(goal >= 1.0x)")  # fmt: skip
    print(f"  the route last, behind all ~40 of ours / plain = {last.rps / plain.rps:.2f}x")
    print(f"  our /health probe / plain = {probe.rps / plain.rps:.2f}x")


if __name__ == "__main__":
    main()
