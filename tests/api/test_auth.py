from __future__ import annotations

import hashlib
import itertools
import logging

import httpx
import pytest
from sqlalchemy import select

from conveyor.db.tables import api_keys
from conveyor.keys import KeyStore
from conveyor.platform import Platform
from tests.conftest import bearer

UNAUTHENTICATED = {
    "error": {
        "code": "unauthenticated",
        "message": "A valid API key is required: send `Authorization: Bearer <key>`.",
    }
}


async def test_a_created_key_authenticates(client: httpx.AsyncClient, platform: Platform) -> None:
    key, token = await platform.keys.create("ci", ["publish", "storage:read"], ["orders"])
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {
        "id": key.id,
        "name": "ci",
        "scopes": ["publish", "storage:read"],
        "queues": ["orders"],
    }


async def test_every_bad_credential_gets_the_same_401(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    revoked, revoked_token = await platform.keys.create("old", ["admin"])
    await platform.keys.revoke(revoked.id)
    _, good = await platform.keys.create("good", ["admin"])
    wrong_secret = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {good}"},
        {"Authorization": f"Bearer {revoked_token}"},
        {"Authorization": f"Bearer {wrong_secret}"},
        {"Authorization": f"Bearer cvk_{'0' * 16}_{'A' * 43}"},
    ]
    for headers in attempts:
        response = await client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == UNAUTHENTICATED
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_key_without_the_scope_gets_403(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    headers = await bearer(platform, "publish")
    response = await client.get("/api/v1/keys", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_keys_are_managed_over_the_api(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/keys", headers=admin, json={"name": "svc", "scopes": ["publish"], "queues": ["q1"]}
    )
    assert created.status_code == 201
    body = created.json()
    token, keyid = body["key"], body["id"]
    assert token.startswith(f"cvk_{keyid}_")
    assert (
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200

    listed = (await client.get("/api/v1/keys", headers=admin)).json()["items"]
    svc = next(k for k in listed if k["id"] == keyid)
    assert svc["scopes"] == ["publish"] and svc["queues"] == ["q1"] and svc["revoked_at"] is None
    assert "key" not in svc and all(token not in str(v) for v in svc.values())

    revoked = await client.delete(f"/api/v1/keys/{keyid}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    after = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 401
    assert (await client.delete("/api/v1/keys/ffffffffffffffff", headers=admin)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["root"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "", "scopes": ["admin"]}, "name"),
        ({"name": "x", "scopes": ["admin"], "queues": ["q"]}, "queues"),
    ],
)
async def test_invalid_new_keys_get_422_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/v1/keys", headers=admin, json=body)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field


async def test_malformed_json_is_400_not_500(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    headers = admin | {"Content-Type": "application/json"}
    response = await client.post("/api/v1/keys", headers=headers, content=b'{"name": "x", ')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    empty = await client.post("/api/v1/keys", headers=headers, content=b"")
    assert empty.status_code == 400


async def test_a_key_in_the_query_string_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    _, token = await platform.keys.create("leaky", ["admin"])
    for query in (f"api_key={token}", f"x={token}", "access_token=abc"):
        response = await client.get(f"/api/v1/me?{query}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "api_key_in_query"


async def test_the_database_holds_only_hashes(platform: Platform) -> None:
    _, token = await platform.keys.create("secret", ["admin"])
    secret = token.split("_", 2)[2]
    async with platform.db.read() as conn:
        rows = (await conn.execute(select(api_keys))).mappings().all()
    dump = repr(rows)
    assert secret not in dump and token not in dump
    assert rows[0]["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()


async def test_last_used_is_recorded(client: httpx.AsyncClient, platform: Platform) -> None:
    key, token = await platform.keys.create("used", ["admin"])
    await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    await platform.keys.flush_usage()
    assert (await platform.keys.get(key.id)).last_used_at is not None


async def test_keys_in_urls_never_reach_the_access_log(
    client: httpx.AsyncClient, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    _, token = await platform.keys.create("leaky", ["admin"])
    with caplog.at_level(logging.INFO, logger="conveyor.access"):
        await client.get(f"/api/v1/me?api_key={token}")
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    lines = [r.getMessage() for r in caplog.records if r.name == "conveyor.access"]
    assert len(lines) == 2
    assert all(token not in line and "cvk_" not in line for line in lines)


async def test_a_key_whose_cache_entry_expires_during_the_lookup_still_authenticates(
    platform: Platform,
) -> None:
    """Under load, a cached key could expire between `in` and `[]`: a KeyError, a 500."""
    ticks = itertools.count()
    # Every reading of the cache's clock moves it 0.3 of the TTL on: the second lookup
    # after each load finds the entry alive at one reading and expired at the next.
    store = KeyStore(platform.db, cache_ttl_s=1.0, cache_clock=lambda: next(ticks) * 0.3)
    key, token = await store.create("ci", ["publish"])
    for _ in range(12):
        assert (await store.authenticate(token)).id == key.id
