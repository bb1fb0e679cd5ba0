"""Database errors as the API tells them apart: the server's fault, or the request's.

A statement too large or too complex for the database (SQLite's "Expression tree is too
large", PostgreSQL's program-limit errors, class 54) or a value it refuses (class 22)
is the client's doing: a 400, never a 503 that invites a retry. Logs get the driver's
message alone: never the statement, never its parameters.
"""

from __future__ import annotations

from sqlalchemy.exc import DataError, DBAPIError

_SQLITE_LIMITS = ("too large", "too many", "too complex", "too big", "too deep")


def caused_by_request(error: BaseException) -> bool:
    """True when `error` comes from what the request asked for, not from the database."""
    if isinstance(error, DataError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    state = str(getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", ""))
    if state:  # PostgreSQL
        return state.startswith(("54", "22"))
    message = str(error.orig).lower()
    return any(limit in message for limit in _SQLITE_LIMITS)


def summary(error: BaseException) -> str:
    """The driver's own message, first line only (no SQL, no parameters)."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    first = (str(cause).splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first[:300]}"
