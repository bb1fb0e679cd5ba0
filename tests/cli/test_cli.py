from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import cli_env, conveyor, serving
from tests.conftest import DatabaseTarget

pytestmark = pytest.mark.slow


@pytest.fixture
def env(database: DatabaseTarget, tmp_path: Path) -> dict[str, str]:
    return cli_env(database, tmp_path / "data")


def test_keys_create_prints_the_key_alone_on_its_last_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = conveyor("keys", "create", "--name", "t", "--scope", "admin", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("cvk_") and " " not in token
    listed = conveyor("keys", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0
    keyid = token.split("_")[1]
    assert keyid in listed.stdout and token not in listed.stdout
    revoked = conveyor("keys", "revoke", keyid, env=env, cwd=tmp_path)
    assert revoked.returncode == 0 and "Revoked" in revoked.stdout
    assert "revoked" in conveyor("keys", "list", env=env, cwd=tmp_path).stdout


def test_cli_errors_are_one_clear_line(env: dict[str, str], tmp_path: Path) -> None:
    bad_scope = conveyor("keys", "create", "--name", "t", "--scope", "root", env=env, cwd=tmp_path)
    assert bad_scope.returncode == 1
    assert "unknown scope 'root'" in bad_scope.stderr and "Traceback" not in bad_scope.stderr
    missing = conveyor("keys", "revoke", "ffffffffffffffff", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "no API key" in missing.stderr
    bad_url = conveyor("migrate", env=env | {"CONVEYOR_DATABASE_URL": "mysql://x/y"}, cwd=tmp_path)
    assert bad_url.returncode == 2 and "unsupported database" in bad_url.stderr


def test_users_create_reads_the_password_from_stdin(env: dict[str, str], tmp_path: Path) -> None:
    args = ("users", "create", "--username", "ana", "--password-stdin")
    created = conveyor(*args, env=env, cwd=tmp_path, stdin="correct horse battery\n")
    assert created.returncode == 0, created.stderr
    again = conveyor(*args, env=env, cwd=tmp_path, stdin="correct horse battery\n")
    assert again.returncode == 1 and "exists already" in again.stderr
    short = conveyor(
        "users",
        "create",
        "--username",
        "bob",
        "--password-stdin",
        env=env,
        cwd=tmp_path,
        stdin="short\n",
    )
    assert short.returncode == 1 and "at least 8" in short.stderr


def _closed_by_server(sock: socket.socket, within_s: float) -> float:
    """Seconds until the server closed `sock` (reads until EOF), failing after `within_s`."""
    began = time.monotonic()
    sock.settimeout(within_s)
    while sock.recv(4096):
        pass
    return time.monotonic() - began


# The database plays no part in how connections are timed out.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_serve_closes_idle_and_silent_connections(env: dict[str, str], tmp_path: Path) -> None:
    with serving(env, tmp_path) as server:
        host, port = server.base.removeprefix("http://").split(":")
        # An idle keep-alive connection: closed after the keep-alive timeout (5 s).
        with socket.create_connection((host, int(port))) as idle:
            idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = idle.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            idle_s = _closed_by_server(idle, within_s=30)
        # A connection that never sends its headers: closed at the header deadline (10 s).
        with socket.create_connection((host, int(port))) as silent:
            silent.sendall(b"GET /health HTTP/1.1\r\n")
            silent_s = _closed_by_server(silent, within_s=30)
        assert httpx.get(f"{server.base}/health").status_code == 200
    # Which deadline closed each: the keep-alive one first, the header one later.
    assert idle_s < silent_s, (idle_s, silent_s)


def test_serve_answers_and_a_second_start_reuses_the_database(
    env: dict[str, str], tmp_path: Path
) -> None:
    with serving(env, tmp_path) as server:
        base = server.base
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        assert httpx.get(f"{base}/ready").status_code == 200
    token = conveyor("keys", "create", "--name", "t", "--scope", "admin", env=env, cwd=tmp_path)
    key = token.stdout.strip().splitlines()[-1]
    with serving(env, tmp_path, "--workers", "2") as server:
        me = httpx.get(f"{server.base}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200 and me.json()["name"] == "t"
    secret = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_first_serve_tells_how_to_create_a_key(env: dict[str, str], tmp_path: Path) -> None:
    with serving(env, tmp_path) as server:
        pass
    output = server.output
    assert "conveyor keys create --name admin --scope admin" in output
    assert "migrated empty" in output


def test_a_command_on_an_empty_database_names_the_database_it_opened(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    listed = conveyor("queues", "list", env=env, cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    opened = f"sqlite:///{elsewhere / '.conveyor' / 'conveyor.db'}"
    assert "No queues yet" in listed.stdout and opened in listed.stdout
    assert "run them from its directory" in listed.stdout
    missing = conveyor("queues", "show", "orders", env=env, cwd=elsewhere)
    assert missing.returncode == 1 and "no queue 'orders'" in missing.stderr
    assert opened in missing.stderr


def test_serve_says_it_listens_once_it_does_and_names_a_taken_port(
    env: dict[str, str], tmp_path: Path
) -> None:
    with serving(env, tmp_path) as server:
        port = server.base.rpartition(":")[2]
        taken = conveyor("serve", "--port", port, env=env, cwd=tmp_path)
    assert taken.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in taken.stderr
    assert "--port N (or CONVEYOR_PORT=N)" in taken.stderr
    assert "listening" not in taken.stdout + taken.stderr
    # The server that got the port said so, after binding it, in Conveyor's words.
    assert f"Conveyor listening on http://127.0.0.1:{port}" in server.output
    assert "Uvicorn running" not in server.output


def test_revoking_a_revoked_key_says_so(env: dict[str, str], tmp_path: Path) -> None:
    created = conveyor("keys", "create", "--name", "t", "--scope", "admin", env=env, cwd=tmp_path)
    keyid = created.stdout.strip().splitlines()[-1].split("_")[1]
    first = conveyor("keys", "revoke", keyid, env=env, cwd=tmp_path)
    assert first.returncode == 0 and first.stdout.startswith("Revoked API key 't'")
    again = conveyor("keys", "revoke", keyid, env=env, cwd=tmp_path)
    assert again.returncode == 0 and "was revoked already" in again.stdout
    assert "Revoked" not in again.stdout


def test_users_list_delete_password_and_roles(env: dict[str, str], tmp_path: Path) -> None:
    def users(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return conveyor("users", *args, env=env, cwd=tmp_path, stdin=stdin)

    first = users("create", "--username", "ana", "--password-stdin", stdin="a long passphrase\n")
    assert "(role: admin)" in first.stdout  # the first user can manage everything
    second = users("create", "--username", "bob", "--password-stdin", stdin="another phrase\n")
    assert "(role: operator)" in second.stdout
    listed = users("list").stdout
    assert re.search(r"ana\s+admin\s+\S+ \S+\s+never", listed), listed
    assert re.search(r"bob\s+operator", listed), listed
    bad_role = users("set-role", "bob", "root")
    assert bad_role.returncode == 2 and "root" in bad_role.stderr
    last_admin = users("delete", "ana")
    assert last_admin.returncode == 1 and "last admin" in last_admin.stderr
    assert "last admin" in users("set-role", "ana", "operator").stderr
    assert "'bob' is now an admin" in users("set-role", "bob", "admin").stdout
    changed = users("password", "bob", "--password-stdin", stdin="a new passphrase\n")
    assert changed.returncode == 0 and "sessions have ended" in changed.stdout
    short = users("password", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    assert "Deleted back-office user 'ana'" in users("delete", "ana").stdout
    assert "no user 'ana'" in users("delete", "ana").stderr
    assert "ana" not in users("list").stdout
