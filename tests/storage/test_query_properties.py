"""Property: any filter/sort/paginate query returns what the same query does in Python."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.platform import Platform

FIELDS = [
    {"name": "n", "type": "integer", "indexed": True},
    {"name": "d", "type": "decimal", "precision": 6, "scale": 2},
    {"name": "t", "type": "text"},
    {"name": "b", "type": "boolean"},
    {"name": "day", "type": "date"},
]
KINDS = {f["name"]: f["type"] for f in FIELDS}
SORTABLE = ["n", "d", "t", "b", "day", "id"]

ints = st.integers(-3, 3)
decimals = st.decimals(min_value=-2, max_value=2, places=2, allow_nan=False, allow_infinity=False)
texts = st.text(alphabet="aAbB_%", max_size=3)
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2024, 1, 4))
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "n": ints,
    "d": decimals,
    "t": texts,
    "b": st.booleans(),
    "day": days,
}
records = st.lists(
    st.fixed_dictionaries({k: st.none() | v for k, v in VALUES.items()}), max_size=12
)


def ops_for(name: str) -> list[str]:
    ops = ["eq", "ne", "in", "isnull"]
    if name != "b":
        ops += ["lt", "lte", "gt", "gte"]
    if name == "t":
        ops += ["contains", "icontains", "startswith"]
    return ops


@st.composite
def filters(draw: st.DrawFn) -> tuple[str, str, Any]:
    name = draw(st.sampled_from(list(VALUES)))
    op = draw(st.sampled_from(ops_for(name)))
    if op == "isnull":
        return name, op, draw(st.booleans())
    if op == "in":
        return name, op, draw(st.lists(VALUES[name], min_size=1, max_size=3))
    if name == "t" and op != "in":
        return name, op, draw(st.text(alphabet="aAbB_%", min_size=1, max_size=2))
    return name, op, draw(VALUES[name])


queries = st.fixed_dictionaries(
    {
        "filters": st.lists(filters(), max_size=2),
        "sort": st.lists(
            st.tuples(st.sampled_from(SORTABLE), st.booleans()),
            max_size=3,
            unique_by=lambda x: x[0],
        ),
        "limit": st.integers(1, 5),
    }
)


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def params_of(query: dict[str, Any]) -> list[tuple[str, str]]:
    params = []
    for name, op, value in query["filters"]:
        shown = ",".join(map(text_of, value)) if op == "in" else text_of(value)
        params.append((f"{name}[{op}]", shown))
    if query["sort"]:
        params.append(("sort", ",".join(("-" if d else "") + n for n, d in query["sort"])))
    params.append(("limit", str(query["limit"])))
    return params


def matches(row: dict[str, Any], name: str, op: str, value: Any) -> bool:
    got = row[name]
    if op == "isnull":
        return (got is None) == value
    if op == "ne":
        return got != value
    if got is None:
        return False
    if op == "in":
        return got in value
    compare = {
        "eq": got == value,
        "lt": got < value if op == "lt" else False,
        "lte": got <= value if op == "lte" else False,
        "gt": got > value if op == "gt" else False,
        "gte": got >= value if op == "gte" else False,
    }
    if op in compare:
        return compare[op]
    if op == "contains":
        return value in got
    if op == "icontains":
        return value.lower() in got.lower()
    return bool(got.startswith(value))


def expected_ids(rows: list[dict[str, Any]], query: dict[str, Any]) -> list[int]:
    kept = [r for r in rows if all(matches(r, *f) for f in query["filters"])]
    keys = list(query["sort"])
    if not any(n == "id" for n, _ in keys):
        keys.append(("id", keys[-1][1] if keys else False))
    # Sort by the last key first: Python's sort is stable, also with reverse=True.
    for name, descending in reversed(keys):
        kept.sort(key=lambda r, n=name: (1, 0) if r[n] is None else (0, r[n]), reverse=descending)
    return [r["id"] for r in kept]


async def test_queries_match_python(platform: Platform) -> None:
    await platform.storage.tables.create({"name": "prop", "fields": FIELDS})
    table = await platform.storage.tables.get("prop")
    loop = asyncio.get_running_loop()

    def run(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)

    async def load(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with platform.db.write() as conn:
            await conn.execute(sa.delete(table.sql))
        if not items:
            return []
        payload = [
            {k: (str(v) if isinstance(v, Decimal | date) else v) for k, v in item.items()}
            for item in items
        ]
        created = await platform.storage.records.create_many("prop", payload)
        return [item | {"id": c["id"]} for item, c in zip(items, created, strict=True)]

    async def walk(params: list[tuple[str, str]]) -> tuple[list[int], int]:
        ids: list[int] = []
        items, cursor, total = await platform.storage.records.query(
            "prop", [*params, ("count", "true")]
        )
        ids += [r["id"] for r in items]
        pages = 1
        while cursor is not None:
            assert pages < 50
            items, cursor, _ = await platform.storage.records.query(
                "prop", [*params, ("cursor", cursor)]
            )
            ids += [r["id"] for r in items]
            pages += 1
        assert total is not None
        return ids, total

    async def offset_page(params: list[tuple[str, str]], page: int) -> list[int]:
        items, _, _ = await platform.storage.records.query("prop", [*params, ("page", str(page))])
        return [r["id"] for r in items]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rows=records, query=queries)
    def check(rows: list[dict[str, Any]], query: dict[str, Any]) -> None:
        stored = run(load(rows))
        params = params_of(query)
        want = expected_ids(stored, query)
        got, total = run(walk(params))
        assert got == want, (params, stored)
        assert total == len(want)
        limit = query["limit"]
        assert run(offset_page(params, 2)) == want[limit : 2 * limit]

    await asyncio.to_thread(check)
