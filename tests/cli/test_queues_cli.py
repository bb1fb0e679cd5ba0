from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import orjson
import pytest

from conveyor.platform import Platform
from tests.cli.helpers import cli_env, conveyor
from tests.conftest import DatabaseTarget

pytestmark = pytest.mark.slow


@pytest.fixture
def env(database: DatabaseTarget, tmp_path: Path) -> dict[str, str]:
    return cli_env(database, tmp_path / "data")


def test_create_list_show_publish(env: dict[str, str], tmp_path: Path) -> None:
    created = conveyor(
        "queues",
        "create",
        "orders",
        "--type",
        "embedded",
        "--option",
        "max_attempts=7",
        env=env,
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    assert "Created embedded queue 'orders'" in created.stdout
    with_password = conveyor(
        "queues", "create", "rq", "--type", "rabbitmq", "--url", "amqp://broker:5672/",
        "--username", "app", "--password-stdin",
        env=env, cwd=tmp_path, stdin="hunter2-secret\n",
    )  # fmt: skip
    assert with_password.returncode == 0, with_password.stderr

    listed = conveyor("queues", "list", env=env, cwd=tmp_path).stdout
    assert "orders" in listed and "rq" in listed and "amqp://broker:5672/" in listed

    published = conveyor("publish", "orders", '{"handler": "x", "n": 1}', env=env, cwd=tmp_path)
    assert published.returncode == 0, published.stderr
    answer = orjson.loads(published.stdout)
    assert set(answer) >= {"message-id", "sqs-id", "queue-id"}

    shown = conveyor("queues", "show", "orders", env=env, cwd=tmp_path).stdout
    assert "max_attempts" in shown and " 7" in shown
    assert [line.split()[-1] for line in shown.splitlines() if line.startswith("ready")] == ["1"]
    secret = conveyor("queues", "show", "rq", env=env, cwd=tmp_path).stdout
    assert "hunter2" not in secret and "set" in secret


def test_bad_input_gets_one_clear_line(env: dict[str, str], tmp_path: Path) -> None:
    bad_name = conveyor("queues", "create", "bad name", "--type", "embedded", env=env, cwd=tmp_path)
    assert bad_name.returncode == 1 and "invalid queue name" in bad_name.stderr
    conveyor("queues", "create", "q", "--type", "embedded", env=env, cwd=tmp_path)
    not_object = conveyor("publish", "q", "[1, 2]", env=env, cwd=tmp_path)
    assert not_object.returncode == 1 and "must be a JSON object" in not_object.stderr
    missing = conveyor("publish", "nope", "{}", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "no queue" in missing.stderr
    bad_option = conveyor(
        "queues", "create", "q2", "--type", "embedded", "--option", "nokey", env=env, cwd=tmp_path
    )
    assert bad_option.returncode == 2 and "key=value" in bad_option.stderr
    for result in (bad_name, not_object, missing, bad_option):
        assert "Traceback" not in result.stderr


@pytest.mark.timeout(120)  # five commands, each a new process
async def test_dead_letters_list_redrive_delete_purge(
    env: dict[str, str], tmp_path: Path, platform: Platform
) -> None:
    queue = await platform.queues.create({"name": "dl", "type": "embedded"})
    backend = await platform.backends.get(queue)
    for n in range(3):
        await platform.publisher.publish(queue, b'{"n": %d}' % n, api_key_id="t")
    for delivery in await backend.receive(3):
        await backend.dead_letter(delivery, reason=f"boom {delivery.id}")
    ids = [letter.id for letter in (await backend.dead_letters(limit=10)).items]

    # The commands run in a thread: this test's platform keeps working meanwhile (a
    # blocked loop could hold SQLite's write lock mid-transaction).
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return conveyor(*args, env=env, cwd=tmp_path)

    listed = await asyncio.to_thread(cli, "dead-letters", "list", "dl")
    assert listed.returncode == 0, listed.stderr
    assert all(i in listed.stdout for i in ids) and "boom" in listed.stdout
    one = await asyncio.to_thread(cli, "dead-letters", "redrive", "dl", "--id", ids[0])
    assert "Sent 1 dead letter(s) back" in one.stdout
    gone = await asyncio.to_thread(cli, "dead-letters", "delete", "dl", "--id", ids[1])
    assert "Deleted 1 dead letter(s)" in gone.stdout
    assert (await backend.stats()).dead == 1
    purged = await asyncio.to_thread(cli, "dead-letters", "purge", "dl")
    assert "Deleted 1 dead letter(s)" in purged.stdout
    stats = await backend.stats()
    assert (stats.ready, stats.dead) == (1, 0)
    unknown = await asyncio.to_thread(cli, "dead-letters", "list", "nope")
    assert unknown.returncode == 1 and "no queue 'nope'" in unknown.stderr


def test_show_prints_the_options_of_the_queue_type_in_json_words(
    env: dict[str, str], tmp_path: Path
) -> None:
    created = conveyor("queues", "create", "plain", "--type", "embedded", env=env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    shown = conveyor("queues", "show", "plain", env=env, cwd=tmp_path).stdout
    options = dict(line.split()[1:3] for line in shown.splitlines() if line.startswith("option "))
    assert options["dead_letter"] == "true" and options["max_attempts"] == "5"
    assert not {"partitions", "consumer_group", "tls", "create_if_missing"} & set(options)
    assert "True" not in shown and "None" not in shown
