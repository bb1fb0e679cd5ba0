from __future__ import annotations

import subprocess

import httpx
import pytest

from conveyor.platform import Platform
from tests.conftest import bearer

QUEUES = "/api/v1/zstorage/queues"


async def test_queue_lifecycle(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    created = await client.post(
        QUEUES,
        headers=admin,
        json={"name": "orders", "type": "embedded", "description": "Orders from the shop"},
    )
    assert created.status_code == 201, created.text
    queue = created.json()
    assert queue["name"] == "orders" and queue["type"] == "embedded"
    assert queue["options"]["max_attempts"] == 5
    assert queue["options"]["visibility_timeout_s"] == 30
    assert queue["has_password"] is False

    listed = (await client.get(QUEUES, headers=admin)).json()["items"]
    assert [q["id"] for q in listed] == [queue["id"]]
    assert (await client.get(f"{QUEUES}/{queue['id']}", headers=admin)).json() == queue

    patched = await client.patch(
        f"{QUEUES}/{queue['id']}", headers=admin, json={"options": {"max_attempts": 9}}
    )
    assert patched.status_code == 200
    assert patched.json()["options"]["max_attempts"] == 9
    assert patched.json()["options"]["visibility_timeout_s"] == 30

    deleted = await client.delete(f"{QUEUES}/{queue['id']}", headers=admin)
    assert deleted.status_code == 200
    assert (await client.get(f"{QUEUES}/{queue['id']}", headers=admin)).status_code == 404


async def test_broker_queues_register_without_their_broker(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Users register queues before the broker exists; only `check` tells."""
    specs = [
        {"name": "r", "type": "rabbitmq", "url": "amqp://broker.invalid:5672/vhost"},
        {"name": "k", "type": "kafka", "url": "kafka://b1.invalid:9092,b2.invalid:9092"},
        {
            "name": "s",
            "type": "sqs",
            "url": "https://sqs.eu-west-1.amazonaws.com/123456789012/s",
            "region": "eu-west-1",
            "username": "AKIAEXAMPLE",
            "password": "wJalrXUtnFEMI/K7MDENG",
        },
    ]
    for spec in specs:
        response = await client.post(QUEUES, headers=admin, json=spec)
        assert response.status_code == 201, response.text
    assert len((await client.get(QUEUES, headers=admin)).json()["items"]) == 3
    only_kafka = (await client.get(f"{QUEUES}?type=kafka", headers=admin)).json()["items"]
    assert [q["name"] for q in only_kafka] == ["k"]


async def test_duplicate_names_are_409(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    spec = {"name": "dup", "type": "embedded"}
    assert (await client.post(QUEUES, headers=admin, json=spec)).status_code == 201
    again = await client.post(QUEUES, headers=admin, json=spec)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    other = (
        await client.post(QUEUES, headers=admin, json={"name": "other", "type": "embedded"})
    ).json()
    renamed = await client.patch(f"{QUEUES}/{other['id']}", headers=admin, json={"name": "dup"})
    assert renamed.status_code == 409


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"name": "../x", "type": "embedded"}, "name"),
        ({"name": 'a"b', "type": "embedded"}, "name"),
        ({"name": "x" * 300, "type": "embedded"}, "name"),
        ({"name": "", "type": "embedded"}, "name"),
        ({"name": "-lead", "type": "embedded"}, "name"),
        ({"name": "ok", "type": "redis"}, "type"),
        ({"name": "ok", "type": "rabbitmq"}, "url"),
        ({"name": "ok", "type": "rabbitmq", "url": "http://h/"}, "url"),
        ({"name": "ok", "type": "rabbitmq", "url": "amqp://h:99999/"}, "url"),
        ({"name": "ok", "type": "kafka", "url": "host-without-port"}, "url"),
        ({"name": "ok", "type": "sqs", "url": "https://sqs.x.amazonaws.com/1/q"}, "region"),
        ({"name": "ok", "type": "sqs", "url": "ftp://h/1/q", "region": "r"}, "url"),
        ({"name": "ok", "type": "embedded", "url": "amqp://h/"}, "url"),
        (
            {"name": "ok", "type": "embedded", "options": {"max_attempts": 0}},
            "options.max_attempts",
        ),
        ({"name": "ok", "type": "embedded", "options": {"bogus": 1}}, "options.bogus"),
        (
            {"name": "ok", "type": "embedded", "options": {"visibility_timeout_s": "x"}},
            "options.visibility_timeout_s",
        ),
        ({"name": "ok", "type": "embedded", "colour": "red"}, "colour"),
    ],
)
async def test_invalid_queues_are_422_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, str], spec: dict[str, object], field: str
) -> None:
    response = await client.post(QUEUES, headers=admin, json=spec)
    assert response.status_code == 422, response.text
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert field in fields
    assert (await client.get(QUEUES, headers=admin)).json()["items"] == []


async def test_every_problem_is_listed_at_once(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.post(
        QUEUES,
        headers=admin,
        json={"name": "../x", "type": "sqs", "url": "nope", "options": {"max_attempts": -1}},
    )
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert {"name", "url", "region", "options.max_attempts"} <= fields


async def test_passwords_are_write_only_and_encrypted(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    secret = "s3cr3t-Pa55word"
    created = await client.post(
        QUEUES,
        headers=admin,
        json={
            "name": "rq",
            "type": "rabbitmq",
            "url": "amqp://broker:5672/",
            "username": "app",
            "password": secret,
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert body["has_password"] is True and "password" not in body
    assert secret not in created.text
    assert secret not in (await client.get(QUEUES, headers=admin)).text
    queue = await platform.queues.get(body["id"])
    assert (await platform.queues.credentials(queue)).password == secret
    assert secret not in await dump(platform)

    # A password written into the URL is moved out of it, and encrypted too.
    url_secret = "in-the-url-Secret"
    in_url = await client.post(
        QUEUES,
        headers=admin,
        json={"name": "rq2", "type": "rabbitmq", "url": f"amqp://bob:{url_secret}@broker:5672/v"},
    )
    assert in_url.status_code == 201
    assert in_url.json()["url"] == "amqp://broker:5672/v"
    assert in_url.json()["username"] == "bob" and in_url.json()["has_password"] is True
    assert url_secret not in await dump(platform)

    # Editing other fields keeps the password; null clears it.
    kept = await client.patch(f"{QUEUES}/{body['id']}", headers=admin, json={"description": "x"})
    assert kept.json()["has_password"] is True
    cleared = await client.patch(f"{QUEUES}/{body['id']}", headers=admin, json={"password": None})
    assert cleared.json()["has_password"] is False


async def dump(platform: Platform) -> str:
    """What `sqlite3 .dump` or `pg_dump` shows of the database."""
    url = platform.db.url
    if platform.db.dialect == "sqlite":
        command = ["sqlite3", str(url.database), ".dump"]
    else:
        command = [
            "pg_dump",
            "-h",
            str(url.host),
            "-p",
            str(url.port or 5432),
            "-U",
            str(url.username),
        ]
        command += ["--schema", str(platform.settings.database_schema), str(url.database)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    assert "conveyor_queues" in result.stdout
    return result.stdout


async def test_queue_admin_needs_the_admin_scope(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    publisher = await bearer(platform, "publish")
    assert (await client.get(QUEUES, headers=publisher)).status_code == 403
    assert (
        await client.post(QUEUES, headers=publisher, json={"name": "x", "type": "embedded"})
    ).status_code == 403
    assert (await client.get(QUEUES)).status_code == 401


async def test_deleting_a_queue_that_holds_messages_needs_force(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    queue = (
        await client.post(QUEUES, headers=admin, json={"name": "full", "type": "embedded"})
    ).json()
    await client.post(f"/api/v1/zstorage/queue/{queue['id']}/publish", headers=admin, json={"a": 1})
    refused = await client.delete(f"{QUEUES}/{queue['id']}", headers=admin)
    assert refused.status_code == 409 and "holds 1 message" in refused.json()["error"]["message"]
    forced = await client.delete(f"{QUEUES}/{queue['id']}?force=true", headers=admin)
    assert forced.status_code == 200


async def test_stats_check_and_dead_letters(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    queue = (
        await client.post(QUEUES, headers=admin, json={"name": "st", "type": "embedded"})
    ).json()
    for n in range(3):
        await client.post(
            f"/api/v1/zstorage/queue/{queue['id']}/publish", headers=admin, json={"n": n}
        )
    stats = (await client.get(f"{QUEUES}/{queue['id']}/stats", headers=admin)).json()
    assert stats == {"ready": 3, "in_flight": 0, "dead": 0, "delayed": 0}
    assert (await client.post(f"{QUEUES}/{queue['id']}/check", headers=admin)).json() == {
        "ok": True,
        "error": None,
    }

    backend = await platform.backends.get(await platform.queues.get(queue["id"]))
    deliveries = await backend.receive(3)
    for delivery in deliveries:
        await backend.dead_letter(delivery, reason=f"bad {delivery.id}")
    page = (await client.get(f"{QUEUES}/{queue['id']}/dead-letters?limit=2", headers=admin)).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = (
        await client.get(
            f"{QUEUES}/{queue['id']}/dead-letters?limit=2&cursor={page['next_cursor']}",
            headers=admin,
        )
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    letters = page["items"] + rest["items"]
    assert sorted(d["payload"]["n"] for d in letters) == [0, 1, 2]
    assert all(d["last_error"] == f"bad {d['message_id']}" and d["attempts"] == 1 for d in letters)

    one = await client.post(
        f"{QUEUES}/{queue['id']}/dead-letters/redrive",
        headers=admin,
        json={"ids": [letters[0]["id"]]},
    )
    assert one.json() == {"count": 1}
    gone = await client.post(
        f"{QUEUES}/{queue['id']}/dead-letters/delete",
        headers=admin,
        json={"ids": [letters[1]["id"]]},
    )
    assert gone.json() == {"count": 1}
    stats = (await client.get(f"{QUEUES}/{queue['id']}/stats", headers=admin)).json()
    assert (stats["ready"], stats["dead"]) == (1, 1)
    everything = await client.post(
        f"{QUEUES}/{queue['id']}/dead-letters/redrive", headers=admin, json={}
    )
    assert everything.json() == {"count": 1}
    bad_id = await client.post(
        f"{QUEUES}/{queue['id']}/dead-letters/redrive", headers=admin, json={"ids": ["x'--"]}
    )
    assert bad_id.status_code == 400


async def test_dead_letter_routes_take_a_name_no_body_for_all_and_delete_all(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    await client.post(QUEUES, headers=admin, json={"name": "dl-by-name", "type": "embedded"})
    base = f"{QUEUES}/dl-by-name"
    for n in range(4):
        await client.post(
            "/api/v1/zstorage/queue/a/dl-by-name/publish", headers=admin, json={"n": n}
        )
    backend = await platform.backends.get(await platform.queues.get_by_name("dl-by-name"))
    for delivery in await backend.receive(4):
        await backend.dead_letter(delivery, reason="bad")
    assert (await client.get(f"{base}/stats", headers=admin)).json()["dead"] == 4
    assert len((await client.get(f"{base}/dead-letters", headers=admin)).json()["items"]) == 4

    # No body at all: every dead letter goes back (the README's "omit for all").
    redriven = await client.post(f"{base}/dead-letters/redrive", headers=admin)
    assert redriven.status_code == 200 and redriven.json() == {"count": 4}
    for delivery in await backend.receive(4):
        await backend.dead_letter(delivery, reason="bad again")

    neither = await client.post(f"{base}/dead-letters/delete", headers=admin, json={})
    assert neither.status_code == 422 and "all" in neither.json()["error"]["message"]
    both = await client.post(
        f"{base}/dead-letters/delete", headers=admin, json={"ids": ["1"], "all": True}
    )
    assert both.status_code == 422
    purged = await client.post(f"{base}/dead-letters/delete", headers=admin, json={"all": True})
    assert purged.json() == {"count": 4}
    stats = (await client.get(f"{base}/stats", headers=admin)).json()
    assert (stats["ready"], stats["dead"]) == (0, 0)

    renamed = await client.patch(base, headers=admin, json={"description": "by name"})
    assert renamed.json()["description"] == "by name"
    assert (await client.delete(base, headers=admin)).status_code == 200
    assert (await client.get(base, headers=admin)).status_code == 404


async def test_each_queue_type_shows_and_takes_its_own_options(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    common = {
        "visibility_timeout_s", "max_attempts", "retry_backoff_s", "retry_backoff_max_s",
        "max_message_bytes", "dead_letter",
    }  # fmt: skip
    # A form sends every option: one of another type's, at its default, passes unkept.
    embedded = await client.post(
        QUEUES,
        headers=admin,
        json={"name": "own-e", "type": "embedded", "options": {"create_if_missing": False}},
    )
    assert embedded.status_code == 201, embedded.text
    assert set(embedded.json()["options"]) == common
    kafka = await client.post(
        QUEUES,
        headers=admin,
        json={"name": "own-k", "type": "kafka", "url": "kafka://127.0.0.1:1"},
    )
    assert set(kafka.json()["options"]) == common | {
        "create_if_missing", "consumer_group", "partitions", "session_timeout_s",
        "sasl_mechanism", "tls",
    }  # fmt: skip
    assert kafka.json()["options"]["consumer_group"] is None

    refused = await client.post(
        QUEUES,
        headers=admin,
        json={"name": "own-x", "type": "embedded", "options": {"partitions": 6, "tls": True}},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == [
        {"field": "options.partitions", "message": "applies to kafka queues only"},
        {"field": "options.tls", "message": "applies to kafka queues only"},
    ]
    sqs_only = await client.patch(
        f"{QUEUES}/own-e", headers=admin, json={"options": {"create_if_missing": True}}
    )
    assert sqs_only.status_code == 422
    assert "kafka and sqs queues only" in sqs_only.json()["error"]["message"]
    # A Kafka queue made embedded keeps none of Kafka's options.
    moved = await client.patch(
        f"{QUEUES}/own-k", headers=admin, json={"type": "embedded", "url": None}
    )
    assert moved.status_code == 200, moved.text
    assert set(moved.json()["options"]) == common


async def test_dead_letters_alone_do_not_hold_a_queue_back_from_deletion(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    await client.post(QUEUES, headers=admin, json={"name": "only-dead", "type": "embedded"})
    for n in range(2):
        await client.post(
            "/api/v1/zstorage/queue/a/only-dead/publish", headers=admin, json={"n": n}
        )
    backend = await platform.backends.get(await platform.queues.get_by_name("only-dead"))
    first, second = await backend.receive(2)
    await backend.dead_letter(first, reason="bad")
    refused = await client.delete(f"{QUEUES}/only-dead", headers=admin)
    message = refused.json()["error"]["message"]
    assert refused.status_code == 409 and "holds 1 message(s) waiting or being handled" in message
    assert "?force=true" in message and "--force" in message
    await backend.ack(second)  # the one being handled is done: only a dead letter is left
    deleted = await client.delete(f"{QUEUES}/only-dead", headers=admin)
    assert deleted.status_code == 200, deleted.text
