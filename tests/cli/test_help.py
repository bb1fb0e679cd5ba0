"""Every command's help reads cleanly: value names, no type tags, whole sentences."""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.testing import CliRunner

from conveyor import __version__
from conveyor.cli import app, help


def command() -> Any:
    return typer.main.get_command(app)


def every_path(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in getattr(group, "commands", {}).items():
        paths += every_path(sub, (*prefix, name))
    return paths


def test_every_help_page_names_values_and_keeps_sentences_whole() -> None:
    root, runner = command(), CliRunner()
    help.name_values(root)  # as `conveyor` does before it parses (for the listing below)
    paths = every_path(root)
    assert ("dead-letters", "purge") in paths and ("users", "password") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], prog_name="conveyor")
        assert result.exit_code == 0, (path, result.output)
        page = result.output
        assert not re.search(r"<[a-z]", page), (path, page)  # no <bool>, <str>, <int range>
        assert not re.search(r" [.,](\s|$)", page), (path, page)  # "Interface to bind ."
        described = page.replace("MODULE_OR_FILE...", "").replace("[ARGS]...", "")
        assert "..." not in described, (path, page)  # a description cut short
        assert "--no-" not in page, (path, page)


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"], prog_name="conveyor")
    assert result.exit_code == 0 and result.output == f"conveyor {__version__}\n"
