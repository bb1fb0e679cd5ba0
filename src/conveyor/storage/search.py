"""Full-text search over a table's `searchable` fields.

PostgreSQL: a generated `tsvector` column (the `simple` configuration, so no language
guesses) with a GIN index, ranked with `ts_rank`. SQLite: an FTS5 table kept in step
by triggers, ranked with bm25. Both match every word of `q` as a prefix.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.exceptions import BadRequest
from conveyor.storage.model import TableDef
from conveyor.storage.names import index_name, short_name
from conveyor.storage.schema import SEARCH_COLUMN, AddColumn, DropColumn

MAX_WORDS = 16
_WORD = re.compile(r"\w+")
_SIMPLE: sa.ColumnElement[Any] = sa.literal_column("'simple'::regconfig")


def words(q: str) -> list[str]:
    found = [w.lower() for w in _WORD.findall(q)][:MAX_WORDS]
    if not found:
        raise BadRequest("q must contain at least one word", details=[_detail("q")])
    return found


def _detail(field: str) -> dict[str, Any]:
    return {"field": field, "rule": None, "message": "must contain at least one word"}


async def install(conn: AsyncConnection, table: TableDef) -> None:
    """Create what searching `table` needs (nothing when no field is searchable)."""
    if not table.searchable:
        return
    if table.dialect == "postgresql":
        await _install_postgresql(conn, table)
    else:
        await _install_sqlite(conn, table)


async def uninstall(conn: AsyncConnection, table: TableDef) -> None:
    if not table.searchable:
        return
    if table.dialect == "postgresql":
        await conn.execute(sa.schema.DropIndex(_gin_index(table), if_exists=True))
        await conn.execute(DropColumn(table.sql_name, SEARCH_COLUMN))
        return
    quote = conn.dialect.identifier_preparer.quote
    for suffix in ("ai", "ad", "au"):
        await conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {quote(_trigger(table, suffix))}")
    await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(fts_name(table))}")


def match(table: TableDef, q: str) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[Any]]:
    """The condition matching `q`, and a score (higher is better) to rank by."""
    if not table.searchable:
        raise BadRequest(
            f"table {table.name!r} has no searchable field; mark fields searchable to use q",
            details=[{"field": "q", "rule": None, "message": "no searchable field"}],
        )
    terms = words(q)
    if table.dialect == "postgresql":
        # Every word as a prefix; whole-word matches add to the rank.
        prefixes = sa.func.to_tsquery(_SIMPLE, " & ".join(f"'{w}':*" for w in terms))
        exact = sa.func.to_tsquery(_SIMPLE, " | ".join(f"'{w}'" for w in terms))
        vector = table.sql.c[SEARCH_COLUMN]
        score = sa.func.ts_rank(vector, prefixes) + sa.func.ts_rank(vector, exact)
        return vector.op("@@")(prefixes), score
    fts = fts_table(table)
    # Every word as a prefix, or as a whole word, which bm25 then ranks higher.
    expression = " AND ".join(f'("{w}" OR "{w}"*)' for w in terms)
    matching = fts.c[fts.name].op("MATCH")(expression)
    # bm25 is only defined inside a MATCH query. One query finds the matches with their
    # rank (a CTE, which SQLite materializes when the rank is used too); a correlated
    # MATCH per row instead would search the whole index again for every match.
    matches = sa.select(fts.c.rowid.label("rid"), fts.c.rank.label("rank")).where(matching)
    found = matches.cte("search_matches")
    condition = table.sql.c.id.in_(sa.select(found.c.rid))
    rank = sa.select(found.c.rank).where(found.c.rid == table.sql.c.id).scalar_subquery()
    return condition, -rank


def fts_name(table: TableDef) -> str:
    return short_name(f"{table.sql_name}__fts")


def fts_table(table: TableDef) -> sa.TableClause:
    name = fts_name(table)
    return sa.table(name, sa.column("rowid"), sa.column(name), sa.column("rank"))


def _trigger(table: TableDef, suffix: str) -> str:
    return short_name(f"{table.sql_name}__fts_{suffix}")


def _gin_index(table: TableDef) -> sa.Index:
    column = sa.Column(SEARCH_COLUMN, TSVECTOR())
    sa.Table(table.sql_name, sa.MetaData(), column)
    return sa.Index(index_name("ix", table.sql_name, SEARCH_COLUMN), column, postgresql_using="gin")


async def _install_postgresql(conn: AsyncConnection, table: TableDef) -> None:
    document: sa.ColumnElement[Any] | None = None
    for field in table.searchable:
        part = sa.func.coalesce(sa.column(field.name, sa.Text()), "")
        document = part if document is None else document + " " + part
    vector = sa.func.to_tsvector(_SIMPLE, document)
    expression = str(vector.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    column = sa.Column(SEARCH_COLUMN, TSVECTOR(), sa.Computed(expression, persisted=True))
    await conn.execute(AddColumn(table.sql_name, column))
    index = _gin_index(table)
    await conn.run_sync(lambda sync: index.create(sync))


async def _install_sqlite(conn: AsyncConnection, table: TableDef) -> None:
    quote = conn.dialect.identifier_preparer.quote
    names = [f.name for f in table.searchable]
    fts = sa.table(fts_name(table), sa.column("rowid"), *(sa.column(n) for n in names))
    new = sa.table("new", sa.column("id"), *(sa.column(n) for n in names))

    def sql(statement: sa.Insert | sa.Delete) -> str:
        compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        return f"{compiled};"

    insert = sql(sa.insert(fts).values({"rowid": new.c.id} | {n: new.c[n] for n in names}))
    delete = sql(sa.delete(fts).where(fts.c.rowid == sa.literal_column("old.id")))
    source = quote(table.sql_name)
    columns = ", ".join(quote(n) for n in names)
    await conn.exec_driver_sql(
        f"CREATE VIRTUAL TABLE {quote(fts.name)} USING fts5({columns}, "
        "tokenize = 'unicode61 remove_diacritics 2')"
    )
    for suffix, event, body in (
        ("ai", "INSERT", insert),
        ("ad", "DELETE", delete),
        ("au", "UPDATE", delete + " " + insert),
    ):
        trigger = quote(_trigger(table, suffix))
        await conn.exec_driver_sql(
            f"CREATE TRIGGER {trigger} AFTER {event} ON {source} BEGIN {body} END"
        )
    copy = sa.insert(fts).from_select(
        ["rowid", *names], sa.select(table.sql.c.id, *(table.sql.c[n] for n in names))
    )
    await conn.execute(copy)
