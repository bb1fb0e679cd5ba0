from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from conveyor.links.model import LinkSpec
from conveyor.platform import Platform
from tests import rabbitmq
from tests.cli.helpers import cli_env
from tests.conftest import DatabaseTarget
from tests.integration.test_outbox import FakeTable
from tests.worker.helpers import eventually

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


async def test_conveyor_relay_sends_the_outbox_and_stops_cleanly(
    platform: Platform, database: DatabaseTarget, tmp_path: Path
) -> None:
    rabbitmq.require()
    await platform.stop_relay()  # only the relay process under test may send
    name = rabbitmq.unique_name("relaycli")
    queue = await platform.queues.create(rabbitmq.registration(name))
    table = FakeTable("pedido")
    await platform.links.put(
        table.name, queue.id, LinkSpec.parse(table.name, {"events": ["create"]})
    )
    for n in range(5):
        async with platform.db.write() as conn:
            await platform.link_hook(conn, table, "create", {"id": n}, None)
    assert (await platform.outbox.counts())["pending"] == 5
    env = cli_env(database, tmp_path / "data") | {
        "CONVEYOR_SECRET_KEY": platform.settings.secret_key.get_secret_value()
    }
    relay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conveyor", "relay", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:

        async def all_sent() -> bool:
            return (await platform.outbox.counts())["sent"] == 5

        await eventually(all_sent, timeout_s=30, what="the relay process sent the outbox")
        assert len(await rabbitmq.drain(name)) == 5
        relay.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(relay.communicate(), 20)
    finally:
        if relay.returncode is None:
            relay.kill()
            await relay.wait()
        await rabbitmq.delete_queues(name)
    assert relay.returncode == 0, err.decode()
    assert "running" in out.decode() and "stopped" in out.decode()
