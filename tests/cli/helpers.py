"""Running `conveyor` as a real subprocess, as users do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import DatabaseTarget


def cli_env(database: DatabaseTarget, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return env | database.env | {"CONVEYOR_DATA_DIR": str(data_dir)}


def conveyor(
    *args: str, env: dict[str, str], cwd: Path, stdin: str | None = None, timeout_s: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, base: str, process: subprocess.Popen[str]) -> None:
        self.base = base
        self.process = process
        #: Everything the server printed, filled in when it has stopped.
        self.output = ""


@contextmanager
def serving(env: dict[str, str], cwd: Path, *args: str) -> Iterator[Server]:
    """`conveyor serve` on a free port, yielded once /health answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "serve", "--port", str(port), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(f"http://127.0.0.1:{port}", process)
    base = server.base
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{process.communicate()[0]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve did not answer /health within 30 s")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            server.output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            server.output, _ = process.communicate()
