"""`conveyor users`: back-office accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.common import database_session, fail, out, read_stdin_line, run

if TYPE_CHECKING:
    from conveyor.users import User

app = typer.Typer(help="Manage back-office users.", no_args_is_help=True)


@app.command()
def create(
    username: Annotated[str, typer.Option("--username", help="The login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a back-office user (password hashed with argon2id)."""
    if password_stdin:
        password = read_stdin_line()
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise fail("the password is empty", 2)

    async def work() -> User:
        from conveyor.users import UserStore

        async with database_session() as session:
            return await UserStore(session.db).create(username, password)

    user = run(work())
    out.print(f"Created back-office user {user.username!r}.")
