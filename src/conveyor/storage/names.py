"""Names of tables, fields and rules, and the SQL names derived from them.

User names are checked against one pattern and a list of reserved words before they
reach any SQL; SQL text is always produced by SQLAlchemy, which quotes identifiers.
"""

from __future__ import annotations

import hashlib
import re

from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as _POSTGRES_RESERVED
from sqlalchemy.dialects.sqlite.base import SQLiteIdentifierPreparer

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: PostgreSQL truncates longer identifiers (NAMEDATALEN - 1).
MAX_SQL_NAME = 63
#: User tables live beside the platform's `conveyor_*` tables, under this prefix.
TABLE_PREFIX = "z_"

#: Columns every user table has; clients read them and never write them.
SYSTEM_FIELDS = ("id", "created_at", "updated_at")

#: Words CEL reserves: a field named so could not be read as `record.<name>`.
_CEL_RESERVED = frozenset(
    [
        "as",
        "break",
        "const",
        "continue",
        "else",
        "false",
        "for",
        "function",
        "if",
        "import",
        "in",
        "let",
        "loop",
        "package",
        "namespace",
        "null",
        "return",
        "true",
        "var",
        "void",
        "while",
    ]
)
#: Words that mean something in the records API (query parameters) or the rule language.
_API_RESERVED = frozenset(
    {"record", "previous", "rowid", "oid", "ctid", "xmin", "xmax", "tableoid"}
    | {"sort", "q", "limit", "cursor", "offset", "page", "count"}
)

RESERVED = (
    frozenset(_POSTGRES_RESERVED)
    | frozenset(SQLiteIdentifierPreparer.reserved_words)
    | _CEL_RESERVED
    | _API_RESERVED
    | frozenset(SYSTEM_FIELDS)
)


def name_problem(name: object, *, what: str) -> str | None:
    if not isinstance(name, str):
        return f"a {what} name must be a string"
    if not NAME_RE.match(name):
        return (
            f"invalid {what} name {name[:80]!r}: use 1 to 63 characters, lowercase letters, "
            "digits and underscores, starting with a letter"
        )
    if "__" in name:
        return f"invalid {what} name {name!r}: double underscores are reserved"
    if what == "rule":
        return None  # a rule name never reaches SQL or CEL
    if name in SYSTEM_FIELDS:
        return f"{name!r} is a system field (id, created_at, updated_at are always present)"
    if name in RESERVED:
        return f"{name!r} is a reserved word; choose another {what} name"
    return None


def sql_table_name(name: str) -> str:
    """The SQL table holding the records of user table `name`."""
    return short_name(TABLE_PREFIX + name)


def short_name(name: str) -> str:
    """`name`, or a shortened form with a hash suffix when it is too long for SQL."""
    if len(name) <= MAX_SQL_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_SQL_NAME - 9]}_{digest}"


def index_name(kind: str, sql_table: str, column: str) -> str:
    """The name of an index or constraint on one column of a user table."""
    return short_name(f"{kind}_{sql_table}_{column}")
