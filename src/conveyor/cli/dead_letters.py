"""`conveyor dead-letters`: list, redrive, delete and purge a queue's dead letters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.common import admin_platform, out, run

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from conveyor.queues.base import DeadLetterPage, QueueBackend

app = typer.Typer(
    help="See a queue's dead letters, send them back, or delete them.", no_args_is_help=True
)
Queue = Annotated[str, typer.Argument(help="Queue name or id.", show_default=False)]
Ids = Annotated[
    list[str] | None,
    typer.Option("--id", metavar="ID", help="A dead letter's id (repeat for several)."),
]


def _on_backend(queue: str, action: Callable[[QueueBackend], Awaitable[object]]) -> object:
    async def work() -> object:
        async with admin_platform() as platform:
            backend = await platform.backends.get(await platform.queues.find(queue))
            return await action(backend)

    return run(work())


@app.command("list")
def list_(
    queue: Queue,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Go on from a previous page.")] = None,
) -> None:
    """List a queue's dead letters, with their last error."""
    from rich.table import Table

    from conveyor.queues.headers import from_epoch_ms

    async def page_of(backend: QueueBackend) -> DeadLetterPage:
        return await backend.dead_letters(limit=limit, cursor=cursor)

    page: DeadLetterPage = _on_backend(queue, page_of)  # type: ignore[assignment]
    if not page.items:
        out.print(f"No dead letters in {queue!r}.")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "MESSAGE ID", "ATTEMPTS", "DEAD AT", "LAST ERROR"):
        table.add_column(column, no_wrap=column != "LAST ERROR")
    for letter in page.items:
        dead_at = from_epoch_ms(letter.dead_at_ms) if letter.dead_at_ms is not None else None
        table.add_row(
            letter.id,
            letter.message_id,
            str(letter.attempts),
            f"{dead_at:%Y-%m-%d %H:%M:%S}" if dead_at else "-",
            letter.last_error or "-",
        )
    out.print(table)
    if page.next_cursor:
        out.print(f"More: conveyor dead-letters list {queue} --cursor {page.next_cursor}")


@app.command()
def redrive(queue: Queue, id: Ids = None) -> None:
    """Send dead letters back to their queue.

    All of them, or those --id names; each comes back as attempt 1.
    """

    async def moved(backend: QueueBackend) -> int:
        return await backend.redrive(id or None)

    count = _on_backend(queue, moved)
    out.print(f"Sent {count} dead letter(s) back to {queue!r}.")


@app.command()
def delete(
    queue: Queue,
    id: Annotated[
        list[str],
        typer.Option("--id", metavar="ID", help="A dead letter's id (repeat for several)."),
    ],
) -> None:
    """Delete the dead letters --id names (all of them: `purge`)."""

    async def deleted(backend: QueueBackend) -> int:
        return await backend.delete_dead_letters(id)

    count = _on_backend(queue, deleted)
    out.print(f"Deleted {count} dead letter(s) of {queue!r}.")


@app.command()
def purge(queue: Queue) -> None:
    """Delete every dead letter of a queue."""
    from conveyor.queues.purge import purge_dead_letters

    count = _on_backend(queue, purge_dead_letters)
    out.print(f"Deleted {count} dead letter(s) of {queue!r}.")
