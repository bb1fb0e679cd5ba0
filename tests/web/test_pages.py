"""Back-office pages over ASGI: what an operator does, and what they get back."""

from __future__ import annotations

import re

import httpx
import orjson

from conveyor.platform import Platform
from conveyor.queues.base import OutgoingMessage
from conveyor.queues.model import Queue
from tests.web.helpers import signed_in_token


def _field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'class="field-error" id="([\w-]+)-error">([^<]+)<', html))


async def _dead_letters(platform: Platform, queue: Queue, *bodies: bytes) -> None:
    backend = await platform.backends.get(queue)
    for body in bodies:
        await backend.publish(OutgoingMessage(body=body))
    for delivery in await backend.receive(len(bodies)):
        await backend.dead_letter(delivery, reason="boom: handler raised")


async def test_dashboard_counts_and_recent_failures(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    quiet = await platform.queues.create({"name": "quiet", "type": "embedded"})
    failing = await platform.queues.create({"name": "failing", "type": "embedded"})
    await platform.publisher.publish_object(quiet, {"handler": "x"})
    await _dead_letters(platform, failing, b'{"n": 1}', b'{"n": 2}')
    page = await signed_in.get("/admin/")
    assert page.status_code == 200
    assert "2 embedded" in page.text
    assert re.search(r'tile-value">1</span>\s*<span class="tile-label">messages ready', page.text)
    failures = page.text.split("Recent failures", 1)[1].split("</section>", 1)[0]
    assert "failing" in failures and "quiet" not in failures
    assert 'href="/admin/queues"' in page.text and 'href="/admin/keys"' in page.text


async def test_queue_list_filters_by_type_and_shows_live_counts(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    orders = await platform.queues.create({"name": "orders", "type": "embedded"})
    await platform.queues.create(
        {"name": "rabbit", "type": "rabbitmq", "url": "amqp://broker.invalid:5672/"}
    )
    await platform.publisher.publish_object(orders, {"handler": "x"})
    await platform.activity.flush()

    everything = await signed_in.get("/admin/queues")
    assert everything.status_code == 200
    assert "orders" in everything.text and "rabbit" in everything.text
    row = everything.text.split('data-queue="orders"', 1)[1].split("</tr>", 1)[0]
    assert 'data-label="Ready">1<' in row
    assert "just now" in row  # last publish
    # A queue whose backend cannot be reached shows why, and does not break the page.
    broken = everything.text.split('data-queue="rabbit"', 1)[1].split("</tr>", 1)[0]
    assert "unavailable" in broken

    embedded = await signed_in.get("/admin/queues", params={"type": "embedded"})
    assert "orders" in embedded.text and 'data-queue="rabbit"' not in embedded.text
    assert '<option value="embedded" selected>' in embedded.text

    rows = await signed_in.get(
        "/admin/queues/rows", params={"type": "embedded"}, headers={"X-Partial": "1"}
    )
    assert rows.text.lstrip().startswith("<tr") and "<html" not in rows.text
    await platform.publisher.publish_object(orders, {"handler": "y"})
    rows = await signed_in.get("/admin/queues/rows", params={"type": "embedded"})
    assert 'data-label="Ready">2<' in rows.text


async def test_create_a_queue_with_inline_errors_then_fix_it(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    token = await signed_in_token(signed_in)
    form = {
        "csrf_token": token,
        "name": "../orders",
        "type": "rabbitmq",
        "url": "http://wrong-scheme",
        "options.max_attempts": "many",
        "options.dead_letter": "1",
    }
    rejected = await signed_in.post("/admin/queues/new", data=form)
    assert rejected.status_code == 422
    errors = _field_errors(rejected.text)
    assert "invalid queue name" in errors["name"]
    assert "amqp://" in errors["url"]
    assert "integer" in errors["options-max_attempts"]
    assert 'value="http://wrong-scheme"' in rejected.text  # what was typed stays
    assert 'aria-invalid="true" aria-describedby="name-error"' in rejected.text
    assert await platform.queues.list() == []

    form |= {
        "name": "orders",
        "type": "embedded",
        "url": "",
        "options.max_attempts": "7",
        "description": "From the shop",
    }
    created = await signed_in.post("/admin/queues/new", data=form)
    assert created.status_code == 303
    (queue,) = await platform.queues.list()
    assert queue.name == "orders" and queue.options.max_attempts == 7
    assert queue.options.dead_letter is True and queue.options.create_if_missing is False
    assert created.headers["location"] == f"/admin/queues/{queue.id}?notice=created"
    detail = await signed_in.get(created.headers["location"])
    assert "Queue created." in detail.text and "From the shop" in detail.text

    duplicate = await signed_in.post("/admin/queues/new", data=form)
    assert duplicate.status_code == 422
    assert "exists already" in _field_errors(duplicate.text)["name"]


async def test_details_never_show_the_password(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create(
        {
            "name": "sqs-orders",
            "type": "sqs",
            "url": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
            "region": "eu-west-1",
            "username": "AKIAEXAMPLE",
            "password": "wJalrXUtnFEMI-very-secret",
        }
    )
    for path in (f"/admin/queues/{queue.id}", f"/admin/queues/{queue.id}/edit"):
        page = await signed_in.get(path)
        assert page.status_code == 200
        assert "wJalrXUtnFEMI" not in page.text
        assert "AKIAEXAMPLE" in page.text and "eu-west-1" in page.text
    detail = await signed_in.get(f"/admin/queues/{queue.id}")
    assert "<dt>Password</dt><dd>set</dd>" in detail.text


async def test_edit_keeps_or_clears_the_password_and_resets_blank_options(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create(
        {
            "name": "rabbit",
            "type": "rabbitmq",
            "url": "amqp://broker.invalid:5672/",
            "password": "secret-one",
            "options": {"max_attempts": 9},
        }
    )
    token = await signed_in_token(signed_in)
    edit = await signed_in.get(f"/admin/queues/{queue.id}/edit")
    assert 'value="9"' in edit.text and "A password is set" in edit.text
    form = {
        "csrf_token": token,
        "name": "rabbit-2",
        "type": "rabbitmq",
        "url": "amqp://broker.invalid:5672/",
        "options.max_attempts": "",
        "options.dead_letter": "1",
        "password": "",
    }
    saved = await signed_in.post(f"/admin/queues/{queue.id}/edit", data=form)
    assert saved.status_code == 303
    edited = await platform.queues.get(queue.id)
    assert edited.name == "rabbit-2" and edited.has_password
    assert edited.options.max_attempts == 5  # blank: back to the default
    assert (await platform.queues.credentials(edited)).password == "secret-one"

    bad = await signed_in.post(
        f"/admin/queues/{queue.id}/edit", data=form | {"options.visibility_timeout_s": "-1"}
    )
    assert bad.status_code == 422
    assert "greater than 0" in _field_errors(bad.text)["options-visibility_timeout_s"]

    cleared = await signed_in.post(
        f"/admin/queues/{queue.id}/edit", data=form | {"clear_password": "1"}
    )
    assert cleared.status_code == 303
    assert not (await platform.queues.get(queue.id)).has_password


async def test_delete_asks_for_force_when_messages_remain(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "orders", "type": "embedded"})
    await platform.publisher.publish_object(queue, {"handler": "x"})
    token = await signed_in_token(signed_in)
    refused = await signed_in.post(f"/admin/queues/{queue.id}/delete", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "still holds 1 message" in refused.text
    deleted = await signed_in.post(
        f"/admin/queues/{queue.id}/delete", data={"csrf_token": token, "force": "1"}
    )
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/admin/queues?notice=deleted"
    assert await platform.queues.list() == []
    gone = await signed_in.get(f"/admin/queues/{queue.id}")
    assert gone.status_code == 404 and "<html" in gone.text


async def test_publish_a_test_message_and_see_its_ids(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create(
        {"name": "orders", "type": "embedded", "options": {"max_message_bytes": 100}}
    )
    token = await signed_in_token(signed_in)
    url = f"/admin/queues/{queue.id}/publish"
    page = await signed_in.post(url, data={"csrf_token": token, "message": '{"handler": "t"}'})
    assert page.status_code == 200
    ids = dict(re.findall(r'data-id="([\w-]+)">([^<]+)<', page.text))
    assert ids["queue-id"] == queue.id
    assert re.fullmatch(r"[0-9a-f-]{36}", ids["message-id"])
    assert ids["sqs-id"] == ids["backend-message-id"]
    (delivery,) = await (await platform.backends.get(queue)).receive(1)
    assert delivery.id == ids["message-id"]
    assert orjson.loads(delivery.body) == {"handler": "t"}

    fragment = await signed_in.post(
        url, data={"csrf_token": token, "message": "{}"}, headers={"X-Partial": "1"}
    )
    assert "message-id" in fragment.text and "<html" not in fragment.text
    for bad, status, words in (
        ("{not json", 422, "not valid JSON"),
        ("[1, 2]", 422, "must be a JSON object"),
        ('{"x": "' + "a" * 200 + '"}', 422, "accepts 100"),
    ):
        refused = await signed_in.post(url, data={"csrf_token": token, "message": bad})
        assert refused.status_code == status, bad
        assert words in refused.text
    assert (await (await platform.backends.get(queue)).stats()).ready == 1


async def test_publish_to_an_unreachable_broker_answers_503_quickly(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create(
        {"name": "rabbit", "type": "rabbitmq", "url": "amqp://127.0.0.1:1/"}
    )
    token = await signed_in_token(signed_in)
    page = await signed_in.post(
        f"/admin/queues/{queue.id}/publish", data={"csrf_token": token, "message": "{}"}
    )
    assert page.status_code == 503
    assert "The backend did not accept the message" in page.text
    assert "message-id" not in page.text


async def test_test_connection(platform: Platform, signed_in: httpx.AsyncClient) -> None:
    good = await platform.queues.create({"name": "orders", "type": "embedded"})
    bad = await platform.queues.create(
        {"name": "rabbit", "type": "rabbitmq", "url": "amqp://127.0.0.1:1/", "password": "pw-x"}
    )
    token = await signed_in_token(signed_in)
    ok = await signed_in.post(f"/admin/queues/{good.id}/check", data={"csrf_token": token})
    assert ok.status_code == 200 and "Connection OK" in ok.text
    failed = await signed_in.post(
        f"/admin/queues/{bad.id}/check", data={"csrf_token": token}, headers={"X-Partial": "1"}
    )
    assert failed.status_code == 200
    assert "Connection failed" in failed.text and "pw-x" not in failed.text


async def test_dead_letters_show_redrive_and_delete(
    platform: Platform, signed_in: httpx.AsyncClient
) -> None:
    queue = await platform.queues.create({"name": "orders", "type": "embedded"})
    await _dead_letters(platform, queue, b'{"n": 1}', b'{"n": 2}', b'{"n": 3}', b'{"n": 4}')
    url = f"/admin/queues/{queue.id}/dead-letters"
    page = await signed_in.get(url)
    assert page.status_code == 200
    assert page.text.count('class="card letter"') == 4
    assert "boom: handler raised" in page.text and "1 attempt" in page.text
    assert "&#34;n&#34;: 1" in page.text or "&quot;n&quot;: 1" in page.text
    ids = re.findall(r'name="redrive_one" value="(\d+)"', page.text)
    token = await signed_in_token(signed_in)
    backend = await platform.backends.get(queue)

    one = await signed_in.post(url, data={"csrf_token": token, "redrive_one": ids[0]})
    assert one.status_code == 303 and "count=1" in one.headers["location"]
    assert (await backend.stats()).ready == 1
    after = await signed_in.get(one.headers["location"])
    assert "1 message(s) sent back to the queue." in after.text

    deleted = await signed_in.post(url, data={"csrf_token": token, "delete_one": ids[1]})
    assert "notice=deleted&count=1" in deleted.headers["location"]
    selected = await signed_in.post(
        url, data={"csrf_token": token, "action": "delete_selected", "ids": ids[2]}
    )
    assert "count=1" in selected.headers["location"]
    rest = await signed_in.post(url, data={"csrf_token": token, "action": "redrive_all"})
    assert "notice=redriven&count=1" in rest.headers["location"]
    stats = await backend.stats()
    assert (stats.ready, stats.dead) == (2, 0)
    assert "No dead letters" in (await signed_in.get(url)).text


async def test_api_keys_create_once_list_and_revoke(
    platform: Platform, signed_in: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    token = await signed_in_token(signed_in)
    missing = await signed_in.post("/admin/keys", data={"csrf_token": token, "name": "svc"})
    assert missing.status_code == 422
    assert "at least one scope" in _field_errors(missing.text)["scopes"]
    assert 'value="svc"' in missing.text

    created = await signed_in.post(
        "/admin/keys",
        data={"csrf_token": token, "name": "svc", "scopes": "publish", "queues": "orders, billing"},
    )
    assert created.status_code == 201
    (secret,) = re.findall(r'value="(cvk_[^"]+)"', created.text)
    assert 'data-copy="#new-key"' in created.text and "shown only once" in created.text
    (key,) = await platform.keys.list()
    assert key.queues == ("orders", "billing")
    assert "orders, billing" in created.text and key.prefix in created.text

    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["name"] == "svc"
    listing = await signed_in.get("/admin/keys")
    # `cvk_<16 hex>_<43 url-safe chars>`: the secret part may itself hold "_".
    secret_part = secret.removeprefix(f"cvk_{key.id}_")
    assert len(secret_part) == 43
    assert secret not in listing.text and secret_part not in listing.text

    revoked = await signed_in.post(f"/admin/keys/{key.id}/revoke", data={"csrf_token": token})
    assert revoked.headers["location"] == "/admin/keys?notice=revoked"
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 401
    assert "revoked" in (await signed_in.get("/admin/keys")).text


async def test_unknown_pages_and_bad_ids_answer_as_pages(signed_in: httpx.AsyncClient) -> None:
    missing = await signed_in.get("/admin/nothing-here")
    assert missing.status_code == 404 and "There is no such page." in missing.text
    queue = await signed_in.get("/admin/queues/0123456789")
    assert queue.status_code == 404 and "no queue" in queue.text
    assert (await signed_in.get("/admin/static/app.js")).status_code == 200


async def test_overview_counts_match_each_queue_stats(platform: Platform) -> None:
    """The list page counts embedded queues in one query; it agrees with `stats()`."""
    busy = await platform.queues.create({"name": "busy", "type": "embedded"})
    empty = await platform.queues.create({"name": "empty", "type": "embedded"})
    backend = await platform.backends.get(busy)
    for n in range(5):
        await backend.publish(OutgoingMessage(body=b'{"n": %d}' % n))
    first, second, _leased = await backend.receive(3)
    await backend.dead_letter(first, reason="x")
    await backend.retry(second, delay_s=60, error="later")
    many = await platform.embedded.stats_many([busy.id, empty.id])
    assert many[busy.id] == await backend.stats()
    assert (many[busy.id].ready, many[busy.id].in_flight, many[busy.id].delayed) == (2, 1, 1)
    assert many[busy.id].dead == 1
    assert many[empty.id] == await (await platform.backends.get(empty)).stats()
