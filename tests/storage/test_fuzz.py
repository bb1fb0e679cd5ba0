"""Garbage in, a clear 4xx out: random definitions, records and queries never get a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TABLES = "/api/v1/zstorage/tables"
KEYS = ["required", "unique", "default", "min", "max", "pattern", "choices", "indexed"]
KEYS += ["searchable", "precision", "scale", "table", "on_delete", "label", "type", "name"]
TYPES = ["text", "integer", "decimal", "boolean", "date", "datetime", "json", "email", "url"]
TYPES += ["select", "reference", "float", ""]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["2024-02-30", "1e400", "NaN", "-0", "a@b.co", "http://x", "t", "("])
    | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "1e999999"])
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner)
)
field_specs = st.dictionaries(
    st.sampled_from(KEYS), scalars | st.sampled_from(TYPES) | st.lists(scalars, max_size=3)
)
FIELDS = [
    {"name": "t", "type": "text", "searchable": True},
    {"name": "n", "type": "integer"},
    {"name": "d", "type": "decimal", "precision": 5, "scale": 2},
    {"name": "ts", "type": "datetime"},
    {"name": "dy", "type": "date"},
    {"name": "j", "type": "json"},
    {"name": "p", "type": "text"},
]
params = st.lists(
    st.tuples(
        st.sampled_from(["t", "n", "d", "ts", "dy", "j", "id", "sort", "q", "limit"])
        | st.sampled_from(["cursor", "offset", "page", "count", "n[in]", "d[gte]", "ts[lt]"])
        | st.sampled_from(["t[icontains]", "dy[isnull]", "j[eq]", "x[y]", "t[", "n]"]),
        st.text(max_size=10)
        | st.sampled_from(["1", "-1", "1.5", "2024-01-01", ",", "-n,t", "1e999999"])
        | st.sampled_from(["0001-01-01T00:00:00+01:00", "99999999999999999999", "true"]),
    ),
    max_size=4,
)


async def test_no_input_gets_a_500(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    created = await client.post(TABLES, headers=admin, json={"name": "f", "fields": FIELDS})
    assert created.status_code == 201
    loop = asyncio.get_running_loop()

    def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
        request = client.request(method, url, headers=admin, **kwargs)
        response = asyncio.run_coroutine_threadsafe(request, loop).result(timeout=30)
        assert response.status_code < 500, (method, url, kwargs, response.text)
        assert response.json().get("error", {}).get("code") != "internal_error"
        return response

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        field=field_specs,
        record=st.dictionaries(
            st.sampled_from(["t", "n", "d", "ts", "dy", "j", "zz"]), json_values
        ),
        query=params,
    )
    def check(field: dict[str, Any], record: dict[str, Any], query: list[tuple[str, str]]) -> None:
        if call("POST", f"{TABLES}/f/fields", json=field).status_code == 201:
            call("DELETE", f"{TABLES}/f/fields/{field['name']}?force=true")
        created = call("POST", f"{TABLES}/f/records", json=record)
        if created.status_code == 201:
            record_id = created.json()["id"]
            call("PATCH", f"{TABLES}/f/records/{record_id}", json=record)
        call("POST", f"{TABLES}/f/records:bulk", json=[record, record])
        call("GET", f"{TABLES}/f/records", params=query)
        call("PATCH", f"{TABLES}/f/fields/p", json=field)
        call("POST", f"{TABLES}", json={"name": "g", "fields": [field], "rules": [record]})
        call("DELETE", f"{TABLES}/g?force=true")

    await asyncio.to_thread(check)
