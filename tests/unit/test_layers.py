"""Every import inside `conveyor` points down the layers (docs/architecture.md).

A module may import from the layers below its own and from its own unit (package or
module); never from a layer above, nor from a sibling unit of its own layer. Imports
inside functions and under `TYPE_CHECKING` count too: a dependency is one wherever it
is written.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import conveyor

#: The layers, top first. Each entry is the units of one layer: `conveyor.<unit>` as a
#: package or a module; "conveyor" is the package itself (the handler API users import).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("server",),
    ("api", "web"),
    ("problems",),
    ("conveyor",),
    ("worker",),
    ("platform",),
    ("links",),
    ("storage", "queues", "keys", "workers", "sessions", "logins", "migrations"),
    ("users",),
    ("db",),
    ("config", "crypto", "json_bodies"),
    ("exceptions", "expiring", "group_commit", "heap", "logs", "version"),
)

ROOT = Path(conveyor.__file__).parent


def _floor(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "conveyor"


def _imported(module: str, is_package: bool, tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Every `conveyor` module `tree` imports, with its line."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            if target == "conveyor":
                # `from conveyor import x`: x may be a module (a unit) or a name.
                for alias in node.names:
                    is_unit = (ROOT / alias.name).is_dir() or (ROOT / f"{alias.name}.py").exists()
                    yield (f"conveyor.{alias.name}" if is_unit else "conveyor"), node.lineno
            else:
                yield target, node.lineno


def wrong_imports(sources: Mapping[str, tuple[bool, str]]) -> list[str]:
    """The imports that break the layering, as `module:line imports target`; `sources`
    maps each module's dotted name to (is it a package, its source)."""
    found = []
    for module, (is_package, source) in sorted(sources.items()):
        here = _unit(module)
        for target, line in _imported(module, is_package, ast.parse(source)):
            if target != "conveyor" and not target.startswith("conveyor."):
                continue
            there = _unit(target)
            if there != here and _floor(there) <= _floor(here):
                found.append(f"{module}:{line} imports {target}")
    return found


def _sources() -> dict[str, tuple[bool, str]]:
    sources = {}
    for path in ROOT.rglob("*.py"):
        parts = ["conveyor", *path.relative_to(ROOT).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        sources[name] = (is_package, path.read_text(encoding="utf-8"))
    return sources


def test_every_unit_has_a_layer() -> None:
    units = {_unit(name) for name in _sources()}
    assert units == {unit for layer in LAYERS for unit in layer}


def test_every_import_points_down() -> None:
    assert wrong_imports(_sources()) == []


def test_an_upward_import_is_caught_wherever_it_is_written() -> None:
    sources = {
        "conveyor.platform": (False, "def f():\n    from conveyor.worker import runner\n"),
        "conveyor.worker.runner": (False, "from conveyor import __version__\n"),
        "conveyor.web.errors": (False, "from ..api.errors import render\n"),
        "conveyor.db": (True, "from . import engine\nfrom .engine import Database\n"),
    }
    assert wrong_imports(sources) == [
        "conveyor.platform:2 imports conveyor.worker",
        "conveyor.web.errors:1 imports conveyor.api.errors",
        "conveyor.worker.runner:1 imports conveyor",
    ]


#: The front-ends: they call the stores and services, and build no SQL.
FRONT_ENDS = ("api", "web", "cli", "server")


def sql_in_front_ends(sources: Mapping[str, tuple[bool, str]]) -> list[str]:
    """Front-end modules that import SQLAlchemy (its URL parser aside) or the tables."""
    found = []
    for module, (_, source) in sorted(sources.items()):
        if _unit(module) not in FRONT_ENDS:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy":
                names = {f"sqlalchemy.{a.name}" for a in node.names} - {"sqlalchemy.make_url"}
            elif isinstance(node, ast.ImportFrom):
                names = {node.module or ""}
            else:
                continue
            if any(n.split(".")[0] == "sqlalchemy" or n == "conveyor.db.tables" for n in names):
                found.append(f"{module}:{node.lineno}")
    return found


def test_the_front_ends_build_no_sql() -> None:
    assert sql_in_front_ends(_sources()) == []


def test_sql_in_a_front_end_is_caught() -> None:
    sources = {
        "conveyor.web.sessions": (False, "from sqlalchemy import select, update\n"),
        "conveyor.api.routes.x": (False, "from conveyor.db.tables import outbox\n"),
        "conveyor.cli.serve": (False, "from sqlalchemy import make_url\n"),
        "conveyor.keys": (False, "from sqlalchemy import select\n"),
    }
    assert sql_in_front_ends(sources) == ["conveyor.api.routes.x:1", "conveyor.web.sessions:1"]
