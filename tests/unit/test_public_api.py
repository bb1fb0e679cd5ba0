"""The handler API users write against: exactly these names, nothing by accident."""

from __future__ import annotations
import __future__

import subprocess
import sys
import types

import pytest

import conveyor

PUBLIC = [
    "Context",
    "HandlerRegistry",
    "Message",
    "Reject",
    "Retry",
    "Runtime",
    "__version__",
    "handler",
]


def test_all_lists_the_public_api_and_nothing_else() -> None:
    assert conveyor.__all__ == PUBLIC
    exported = {
        name
        for name in dir(conveyor)
        if not name.startswith("_")
        and not isinstance(getattr(conveyor, name), types.ModuleType | __future__._Feature)
    }
    assert exported | {"__version__"} == set(conveyor.__all__)


def test_the_handler_api_is_imported_on_first_use() -> None:
    code = (
        "import sys, conveyor; assert 'conveyor.worker.context' not in sys.modules; "
        "from conveyor import Context, handler; assert Context.__name__ == 'Context'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        conveyor.nothing  # type: ignore[attr-defined]  # noqa: B018


def test_every_public_name_is_documented() -> None:
    for name in conveyor.__all__:
        if name != "__version__":
            assert getattr(conveyor, name).__doc__, f"conveyor.{name} has no docstring"
