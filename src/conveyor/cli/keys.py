"""`conveyor keys`: create, list and revoke API keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.common import database_session, empty_database_hint, out, run

if TYPE_CHECKING:
    from conveyor.keys import ApiKey

#: The scopes a key may have (`conveyor.keys.Scope`; a test keeps the two the same).
SCOPES = ("admin", "publish", "storage:read", "storage:write")

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"Repeat for several: {', '.join(SCOPES)}."),
    ],
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", help="Limit a publish key to this queue (repeat for several)."),
    ] = None,
) -> None:
    """Create an API key.

    The key is printed alone on the last line, once: store it then.
    """

    async def work() -> tuple[ApiKey, str]:
        from conveyor.keys import KeyStore

        async with database_session() as session:
            return await KeyStore(session.db).create(name, scope, queue or None)

    key, token = run(work())
    limited = f", queues: {', '.join(key.queues)}" if key.queues else ""
    out.print(f"Created API key {key.name!r} (id {key.id}, scopes: {_scopes(key)}{limited}).")
    out.print("Store it now: it is shown once and cannot be recovered.")
    print(token)


@app.command("list")
def list_() -> None:
    """List API keys (never the keys themselves)."""

    from rich.table import Table

    from conveyor.keys import KeyStore

    async def work() -> tuple[list[ApiKey], str]:
        async with database_session() as session:
            return await KeyStore(session.db).list(), empty_database_hint(session.settings)

    keys, hint = run(work())
    if not keys:
        out.print("No API keys yet. Create one: conveyor keys create --name admin --scope admin")
        out.print(hint)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "NAME", "SCOPES", "QUEUES", "CREATED", "LAST USED", "STATUS"):
        table.add_column(column, no_wrap=column != "NAME")
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            _scopes(key),
            ", ".join(key.queues) if key.queues else "all",
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
            "revoked" if key.revoked else "active",
        )
    out.print(table)


@app.command()
def revoke(keyid: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")]) -> None:
    """Revoke an API key.

    It stops working within seconds on every server.
    """

    async def work() -> tuple[ApiKey, bool]:
        from conveyor.keys import KeyStore

        async with database_session() as session:
            store = KeyStore(session.db)
            already = (await store.get(keyid)).revoked
            return await store.revoke(keyid), already

    key, already = run(work())
    if already and key.revoked_at is not None:
        out.print(
            f"API key {key.name!r} (id {key.id}) was revoked already, "
            f"{key.revoked_at:%Y-%m-%d %H:%M} UTC."
        )
    else:
        out.print(f"Revoked API key {key.name!r} (id {key.id}).")


def _scopes(key: ApiKey) -> str:
    return ", ".join(sorted(key.scopes))
