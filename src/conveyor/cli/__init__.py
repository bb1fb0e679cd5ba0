"""The `conveyor` command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from conveyor import __version__
from conveyor.cli import dead_letters, help, keys, queues, relay, serve, users, worker

app = typer.Typer(
    name="conveyor",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help (click's): quick to print, and no markup to eat [brackets] in texts.
    rich_markup_mode=None,
    cls=help.NamedValues,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Conveyor: queues, workers, records and a back-office.

    Every command opens the database and secret key that CONVEYOR_DATABASE_URL,
    CONVEYOR_DATA_DIR and CONVEYOR_SECRET_KEY name (default: ./.conveyor), so run them
    where `conveyor serve` runs, or with its settings.
    """


serve.register(app)
worker.register(app)
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(queues.app, name="queues")
app.add_typer(dead_letters.app, name="dead-letters")
app.command()(queues.publish)
app.command()(relay.relay)


def main() -> None:
    app(args=worker.expand_handlers(sys.argv[1:]), prog_name="conveyor")
