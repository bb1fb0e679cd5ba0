"""`conveyor users`: back-office accounts and their roles."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.common import database_session, fail, out, read_stdin_line, run

if TYPE_CHECKING:
    from conveyor.db import Database
    from conveyor.users import User, UserStore

app = typer.Typer(
    help="Manage back-office users.\n\nAdmins manage everything, API keys and users "
    "included; operators everything else.",
    no_args_is_help=True,
)


class Role(StrEnum):
    """`conveyor.users.Role`, without importing it (a test keeps them equal)."""

    ADMIN = "admin"
    OPERATOR = "operator"


Username = Annotated[str, typer.Argument(help="The login name.", show_default=False)]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _store(db: Database) -> UserStore:
    from conveyor.users import UserStore

    return UserStore(db)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = read_stdin_line()
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise fail("the password is empty", 2)
    return password


@app.command()
def create(
    username: Annotated[str, typer.Option("--username", metavar="NAME", help="The login name.")],
    password_stdin: PasswordStdin = False,
    role: Annotated[
        Role | None,
        typer.Option(
            help="admin or operator. Default: admin for the first user, operator after.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create a back-office user (password hashed with argon2id)."""
    password = _password(password_stdin)

    async def work() -> User:
        async with database_session() as session:
            store = _store(session.db)
            chosen = role.value if role else ("operator" if await store.list() else "admin")
            return await store.create(username, password, chosen)

    user = run(work())
    out.print(f"Created back-office user {user.username!r} (role: {user.role.value}).")


@app.command("list")
def list_() -> None:
    """List back-office users with their role and last sign-in."""
    from rich.table import Table

    async def work() -> list[User]:
        async with database_session() as session:
            return await _store(session.db).list()

    users = run(work())
    if not users:
        out.print("No users yet. Create one: conveyor users create --username NAME")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("USERNAME", "ROLE", "CREATED", "LAST SIGN-IN"):
        table.add_column(column, no_wrap=True)
    for user in users:
        table.add_row(
            user.username,
            user.role.value,
            f"{user.created_at:%Y-%m-%d %H:%M}",
            f"{user.last_login_at:%Y-%m-%d %H:%M}" if user.last_login_at else "never",
        )
    out.print(table)


@app.command()
def delete(username: Username) -> None:
    """Delete a user and end their sessions.

    The last admin cannot be deleted.
    """

    async def work() -> User:
        async with database_session() as session:
            return await _store(session.db).delete(username)

    user = run(work())
    out.print(f"Deleted back-office user {user.username!r}.")


@app.command()
def password(username: Username, password_stdin: PasswordStdin = False) -> None:
    """Change a user's password.

    Their sessions end: they sign in again.
    """
    new = _password(password_stdin)

    async def work() -> User:
        async with database_session() as session:
            return await _store(session.db).set_password(username, new)

    user = run(work())
    out.print(f"Changed the password of {user.username!r}; their sessions have ended.")


@app.command("set-role")
def set_role(
    username: Username,
    role: Annotated[Role, typer.Argument(help="admin or operator.", show_default=False)],
) -> None:
    """Make a user an admin or an operator.

    The last admin stays one.
    """

    async def work() -> User:
        async with database_session() as session:
            return await _store(session.db).set_role(username, role.value)

    user = run(work())
    out.print(f"{user.username!r} is now an {user.role.value}.")
