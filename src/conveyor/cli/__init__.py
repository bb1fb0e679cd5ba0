"""The `conveyor` command."""

from __future__ import annotations

import sys

import typer

from conveyor.cli import dead_letters, keys, queues, relay, serve, users, worker

app = typer.Typer(
    name="conveyor",
    help="Conveyor: queues, workers, records and a back-office.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help (click's): quick to print, and no markup to eat [brackets] in texts.
    rich_markup_mode=None,
)
serve.register(app)
worker.register(app)
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(queues.app, name="queues")
app.add_typer(dead_letters.app, name="dead-letters")
app.command()(queues.publish)
app.command()(relay.relay)


def main() -> None:
    app(args=worker.expand_handlers(sys.argv[1:]))
