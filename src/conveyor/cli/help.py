"""Help that reads like a Unix tool's: `--port PORT`, `--type [embedded|kafka|...]`."""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

#: Metavars for options whose names say little about their value.
METAVARS = {"shutdown_timeout_s": "SECONDS", "idempotency_key": "KEY", "option": "KEY=VALUE"}


def name_values(command: Any) -> None:
    """Give every option and argument of `command` and its subcommands a metavar
    (typer shows `<str>`, `<list[str]>` or `<int range>` otherwise); flags get none."""
    for param in getattr(command, "params", []):
        if param.param_type_name == "argument":
            # An argument's help line shows its name; typer would add `<str>` after it.
            param.display_type_rich = lambda ctx: None
        if param.metavar is not None or getattr(param, "is_flag", False):
            continue
        described = getattr(param, "type_descriptor", None)
        choices = described.choices if described is not None and described.is_choice else None
        if choices:
            param.metavar = "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]"
        else:
            param.metavar = METAVARS.get(param.name, param.name.upper())
    for sub in getattr(command, "commands", {}).values():
        name_values(sub)


class NamedValues(TyperGroup):
    """The root command: names its values (above) before it parses or shows help."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        name_values(self)
        return super().main(*args, **kwargs)
