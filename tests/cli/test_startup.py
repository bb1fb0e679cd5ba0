"""The `conveyor` command starts fast: help and the registry commands load no server,
no worker and no Alembic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.cli.keys import SCOPES
from conveyor.cli.queues import QueueType as CliQueueType
from conveyor.db.migrate import head_revision
from conveyor.db.revision import newest_revision
from conveyor.keys import Scope
from conveyor.queues.model import QueueType

HEAVY = ("alembic", "fastapi", "uvicorn", "conveyor.platform", "conveyor.worker.runner")
PROBE = """
import sys
from conveyor.cli import app
try:
    app(args=sys.argv[1:])
except SystemExit as exit:
    assert not exit.code, exit.code
print("LOADED", *sorted(m for m in {heavy!r} if m in sys.modules))
"""


def loaded(args: list[str], cwd: Path, *heavy: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    code = PROBE.format(heavy=heavy)
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip().splitlines()[-1].split()[1:]


def test_help_loads_neither_the_database_nor_the_server(tmp_path: Path) -> None:
    assert loaded(["--help"], tmp_path, "sqlalchemy", "pydantic_settings", *HEAVY) == []
    assert loaded(["queues", "create", "--help"], tmp_path, "sqlalchemy", *HEAVY) == []


@pytest.mark.slow
def test_registry_commands_skip_alembic_once_the_schema_is_the_newest(tmp_path: Path) -> None:
    # The first command creates the database (Alembic runs); the next ones only read.
    assert loaded(["queues", "list"], tmp_path, "alembic") == ["alembic"]
    assert loaded(["queues", "list"], tmp_path, *HEAVY) == []
    assert loaded(["keys", "list"], tmp_path, *HEAVY) == []


def test_the_newest_revision_is_alembics_head() -> None:
    assert newest_revision() == head_revision()


def test_the_cli_knows_every_scope_and_queue_type() -> None:
    assert set(SCOPES) == {s.value for s in Scope}
    assert {t.value for t in CliQueueType} == {t.value for t in QueueType}
