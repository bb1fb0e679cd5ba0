"""The handler API users write against: exactly these names, nothing by accident."""

from __future__ import annotations
import __future__

import types

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
        for name, value in vars(conveyor).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }
    assert exported | {"__version__"} == set(conveyor.__all__)


def test_every_public_name_is_documented() -> None:
    for name in conveyor.__all__:
        if name != "__version__":
            assert getattr(conveyor, name).__doc__, f"conveyor.{name} has no docstring"
