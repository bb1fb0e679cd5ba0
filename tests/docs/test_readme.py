"""The README runs as written: its shell blocks, in order, against `conveyor serve`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conveyor.queues.model import QueueType
from tests.cli.helpers import cli_env, serving
from tests.conftest import DatabaseTarget
from tests.docs.readme_blocks import README, ROOT, script, shell_blocks

pytestmark = pytest.mark.slow


def test_only_the_blocks_that_start_long_running_processes_are_skipped() -> None:
    blocks = shell_blocks(README.read_text())
    skipped = [b.code.split()[0] for b in blocks if b.skip_reason is not None]
    assert skipped == ["./scripts/run", "conveyor"]  # the two commands; a worker
    assert sum(b.skip_reason is None for b in blocks) >= 4


@pytest.mark.timeout(180)  # every command of the tour, each a new process
def test_the_readme_shell_blocks_run_against_a_live_server(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    env = cli_env(database, tmp_path / "data")
    blocks = shell_blocks(README.read_text())
    with serving(env, tmp_path) as server:
        result = subprocess.run(
            ["bash", "-c", script(blocks, server.base)],
            cwd=ROOT,  # "from the same directory": the clone, with its .venv
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    output = result.stdout
    last_block = [line for line in output.splitlines() if line.startswith(":::")][-1:]
    assert result.returncode == 0, f"{last_block}\n{output[-3000:]}\n{result.stderr[-3000:]}"
    assert '{"status":"ok"}' in output and '{"status":"ready"}' in output
    assert '"name":"admin","scopes":["admin"]' in output
    assert '"message-id"' in output and "validation_failed" in output
    # The filter and search examples print the stored record (curl -g: no URL globbing).
    assert output.count('"nome":"Ana Silva"') >= 3
    assert '{"enqueued":1,' in output  # the replay's filter, in brackets, matched Ana


def test_every_queue_type_has_its_page_and_the_readme_links_each() -> None:
    readme = README.read_text()
    for queue_type in QueueType:
        page = ROOT / "docs" / "queues" / f"{queue_type.value}.md"
        assert page.is_file(), page
        assert f"](docs/queues/{queue_type.value}.md)" in readme
    assert {p.name for p in (ROOT / "docs").glob("*.md")} == {
        "architecture.md",
        "backoffice.md",
        "foreign-producers.md",
    }  # backend pages live in docs/queues/ only


def test_relative_links_of_the_readme_and_docs_resolve() -> None:
    for page in [README, *(ROOT / "docs").rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", page.read_text()):
            assert (page.parent / target).resolve().is_file(), (page, target)
