"""`conveyor queues` and `conveyor publish`."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.common import (
    Session,
    admin_platform,
    database_session,
    empty_database_hint,
    out,
    read_stdin_line,
    run,
)

if TYPE_CHECKING:
    from conveyor.queues.base import QueueStats
    from conveyor.queues.model import Queue
    from conveyor.queues.registry import QueueRegistry

app = typer.Typer(help="Manage queues.", no_args_is_help=True)


class QueueType(StrEnum):
    """`conveyor.queues.model.QueueType`, without importing it (a test keeps them equal)."""

    EMBEDDED = "embedded"
    RABBITMQ = "rabbitmq"
    KAFKA = "kafka"
    SQS = "sqs"


def registry(session: Session) -> QueueRegistry:
    from conveyor.crypto import SecretBox
    from conveyor.queues.registry import QueueRegistry

    return QueueRegistry(
        session.db,
        SecretBox(session.settings.secret_keys),
        cache_ttl_s=0,
        deny_private_urls=session.settings.deny_private_queue_urls,
    )


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`k=v` pairs; each value is read as JSON when it is JSON (numbers, true), else text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--option")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Unique queue name (the broker's queue/topic).")],
    type: Annotated[QueueType, typer.Option("--type", help="Where messages live.")],
    url: Annotated[str | None, typer.Option(help="Broker URL (not for embedded).")] = None,
    username: Annotated[str | None, typer.Option(help="User, or SQS access key id.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password (SQS secret) from stdin.")
    ] = False,
    region: Annotated[str | None, typer.Option(help="AWS region (SQS).")] = None,
    description: Annotated[str | None, typer.Option(help="What the queue is for.")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="key=value, e.g. max_attempts=10.")
    ] = None,
) -> None:
    """Register a queue.

    Its broker need not be reachable yet: `queues show` says whether it is.
    """
    spec: dict[str, Any] = {
        "name": name,
        "type": type.value,
        "options": parse_options(option or []),
    }
    for field, value in (("url", url), ("username", username), ("region", region)):
        if value is not None:
            spec[field] = value
    if description is not None:
        spec["description"] = description
    if password_stdin:
        spec["password"] = read_stdin_line()

    async def work() -> Queue:
        async with database_session() as session:
            return await registry(session).create(spec)

    queue = run(work())
    out.print(f"Created {queue.type.value} queue {queue.name!r} (id {queue.id}).")


@app.command("list")
def list_(
    type: Annotated[QueueType | None, typer.Option("--type", help="Only this type.")] = None,
) -> None:
    """List queues."""

    from rich.table import Table

    from conveyor.queues import model

    async def work() -> tuple[list[Queue], str]:
        async with database_session() as session:
            kind = model.QueueType(type.value) if type else None
            return await registry(session).list(kind), empty_database_hint(session.settings)

    queues, hint = run(work())
    if not queues:
        out.print("No queues yet. Create one: conveyor queues create orders --type embedded")
        out.print(hint)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "NAME", "TYPE", "URL"):
        table.add_column(column, no_wrap=True)
    for queue in queues:
        table.add_row(queue.id, queue.name, queue.type.value, queue.url or "-")
    out.print(table)


@app.command()
def show(name: Annotated[str, typer.Argument(help="Queue name or id.")]) -> None:
    """A queue's settings and live counts."""

    from rich.table import Table

    from conveyor.exceptions import ConveyorError
    from conveyor.queues.model import own_options

    async def work() -> tuple[Queue, QueueStats | str]:
        async with admin_platform() as platform:
            queue = await platform.queues.find(name)
            try:
                backend = await platform.backends.get(queue)
                stats: QueueStats | str = await backend.stats()
            except ConveyorError as exc:
                stats = exc.message
            return queue, stats

    queue, stats = run(work())
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("id", queue.id),
        ("name", queue.name),
        ("type", queue.type.value),
        ("url", queue.url or "-"),
        ("username", queue.username or "-"),
        ("password", "set" if queue.has_password else "-"),
        ("region", queue.region or "-"),
        ("description", queue.description or "-"),
    ]
    # In the API's JSON words (true, null), the options of the queue's type only.
    options = own_options(queue.type, queue.options)
    rows += [(f"option {k}", json.dumps(v)) for k, v in options.items()]
    if isinstance(stats, str):
        rows.append(("stats", f"unavailable: {stats}"))
    else:
        for label, count in (
            ("ready", stats.ready),
            ("in flight", stats.in_flight),
            ("dead", stats.dead),
        ):
            rows.append((label, "?" if count is None else str(count)))
    for label, value in rows:
        table.add_row(label, value)
    out.print(table)


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Queue name or id.")],
    force: Annotated[
        bool, typer.Option("--force", help="Delete even if messages wait or are being handled.")
    ] = False,
) -> None:
    """Delete a queue.

    An embedded queue's messages and dead letters go with it.
    """

    async def work() -> Queue:
        async with database_session() as session:
            queues = registry(session)
            return await queues.delete((await queues.find(name)).id, force=force)

    queue = run(work())
    out.print(f"Deleted queue {queue.name!r}.")


def publish(
    queue: Annotated[str, typer.Argument(help="Queue name or id.")],
    payload: Annotated[str, typer.Argument(help="A JSON object, or - to read it from stdin.")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="Publishing again with the same key sends nothing.")
    ] = None,
) -> None:
    """Publish one JSON message.

    Prints the ids the API would answer.
    """
    body = (read_stdin_line() if payload == "-" else payload).encode()

    async def work() -> dict[str, Any]:
        async with admin_platform() as platform:
            target = await platform.queues.find(queue)
            return await platform.publisher.publish(
                target, body, idempotency_key=idempotency_key, api_key_id="cli"
            )

    import orjson

    print(orjson.dumps(run(work())).decode())
