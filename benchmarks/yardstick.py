"""Servers for the HTTP benchmarks: `conveyor serve` as a user runs it, and the yardstick
beside it, `minimal_app.py` (the smallest honest route doing the same durable write; see
its docstring), both one process under uvicorn with uvloop and httptools, loaded by wrk.

The yardstick is `minimal_app.py` beside this file, kept verbatim
(`--minimal PATH` takes another): a baseline written through our own stack would
measure the stack against itself, and a baseline tuned by the side it measures proves
nothing, so it is never edited here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

DEFAULT_MINIMAL = Path(__file__).resolve().parent / "minimal_app.py"
PG_ADMIN = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CONVEYOR = Path(sys.executable).parent / "conveyor"
STUDENT = {
    "name": "estudante",
    "fields": [
        {"name": "nome", "type": "text", "required": True},
        {"name": "idade", "type": "integer"},
        {"name": "email", "type": "email"},
    ],
}
RECORD = '{"nome":"Ana Silva","idade":30,"email":"ana@example.com"}'
MESSAGE = (
    '{"handler":"send_email","to":"example@example.com","subject":"First Message",'
    '"contents":"Contents of Message, padded to about two hundred bytes of JSON payload '
    'for the benchmark run"}'
)
_WRK_LUA = """wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
"""


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float


def need_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(url: str, body: str, *, key: str = "", seconds: int = 10, connections: int = 50) -> Load:
    """POST `body` to `url` for `seconds` (wrk -t1); any non-2xx answer stops the run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_LUA)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
             script.name, url],
            env=os.environ | {"WRK_KEY": key, "WRK_BODY": body},
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise SystemExit(f"{url}: {bad.group(1)} answers were not 2xx\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps is not None, out
    return Load(float(rps.group(1)), _ms(out, "50%"), _ms(out, "99%"))


def _ms(out: str, line: str) -> float:
    found = re.search(rf"{line}\s+([\d.]+)(us|ms|s)\b", out)
    assert found is not None, out
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


def fresh_database(name: str) -> str:
    """A new, empty PostgreSQL database's URL."""
    for sql in (f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'):
        subprocess.run(
            ["psql", PG_ADMIN, "-qc", sql], check=True,
            env=os.environ | {"PGOPTIONS": "--client-min-messages=warning"},
        )  # fmt: skip
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_database(name: str) -> None:
    subprocess.run(["psql", PG_ADMIN, "-qc", f'DROP DATABASE IF EXISTS "{name}"'], check=False)


def call(base: str, path: str, key: str, body: Any) -> Any:
    request = urllib.request.Request(
        base + path, data=orjson.dumps(body), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        return orjson.loads(answer.read() or b"null")


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited; its log:\n{log.read_text()}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # any answer means it listens
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within 60 s; log: {log}")


@contextlib.contextmanager
def _process(
    args: list[str], env: dict[str, str], cwd: Path, probe: str, log: Path
) -> Iterator[None]:
    process = subprocess.Popen(
        args, env=os.environ | env, cwd=cwd, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait(probe, process, log)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@dataclass
class Conveyor:
    base: str
    key: str
    queue_id: str


@contextlib.contextmanager
def serve(env: dict[str, str], work: Path) -> Iterator[str]:
    """`conveyor serve` (one process) with `env` on a free port, run from `work`; its
    base URL once `/health` answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [str(CONVEYOR), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with _process(args, env, work, base + "/health", work / "conveyor.log"):
        yield base


@contextlib.contextmanager
def conveyor(database: str, work: Path) -> Iterator[Conveyor]:
    """`conveyor serve` on a fresh database (`sqlite` or `postgresql`), with an admin
    key, an embedded queue `bench` and the table `estudante` (nome, idade, email)."""
    env = {"CONVEYOR_DATA_DIR": str(work / "data")}
    name = f"bench_conveyor_{os.getpid()}"
    if database == "postgresql":
        env["CONVEYOR_DATABASE_URL"] = fresh_database(name)
    try:
        with serve(env, work) as base:
            made = subprocess.run(
                [str(CONVEYOR), "keys", "create", "--name", "bench", "--scope", "admin"],
                env=os.environ | env, cwd=work, capture_output=True, text=True, check=True,
            )  # fmt: skip
            key = made.stdout.split()[-1]
            spec = {"name": "bench", "type": "embedded"}
            queue = call(base, "/api/v1/zstorage/queues", key, spec)
            call(base, "/api/v1/zstorage/tables", key, STUDENT)
            yield Conveyor(base, key, queue["id"])
    finally:
        if database == "postgresql":
            drop_database(name)


@contextlib.contextmanager
def minimal(database: str, work: Path, app: Path = DEFAULT_MINIMAL) -> Iterator[str]:
    """The yardstick on a fresh database; its base URL."""
    if not app.is_file():
        raise SystemExit(f"no yardstick at {app}: pass --minimal PATH to minimal_app.py")
    name = f"bench_minimal_{os.getpid()}"
    url = fresh_database(name) if database == "postgresql" else f"sqlite:///{work}/minimal.db"
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "minimal_app:app", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--log-level", "warning",
            "--loop", "uvloop", "--http", "httptools"]  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        env = {"MINIMAL_DATABASE_URL": url}
        with _process(args, env, app.parent, base + "/", work / "minimal.log"):
            yield base
    finally:
        if database == "postgresql":
            drop_database(name)
