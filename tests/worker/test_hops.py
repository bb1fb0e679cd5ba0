"""Handlers that publish to their own queue for ever (issue 28, item 8) are stopped by
the hop count: `conveyor-hops`, one more at each publish from a handler, refused past
MAX_HOPS."""

from __future__ import annotations

import pytest

from conveyor import Context, handler
from conveyor.platform import Platform
from conveyor.worker import context as contexts
from conveyor.worker.handlers import HandlerRegistry
from tests.worker.conftest import NewQueue
from tests.worker.helpers import drained, eventually, running


@pytest.mark.every_backend
async def test_a_handler_publishing_to_its_own_queue_stops_at_the_hop_limit(
    platform: Platform, worker_queue: NewQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contexts, "MAX_HOPS", 5, raising=False)
    queue = await worker_queue(max_attempts=1)
    hops: list[int] = []

    @handler("again", auto_ack=True)
    async def again(context: Context) -> None:
        hops.append(int(context.message.headers.get("conveyor-hops", "0")))
        await context.publish(queue.name, {"handler": "again"})

    # Given a handler that publishes a new message to its own queue every time
    await platform.publisher.publish_object(queue, {"handler": "again"})
    async with running(platform, queue, HandlerRegistry([again])):
        # When it runs, the chain ends at the hop limit, in the dead letters
        await eventually(lambda: drained(platform, queue, dead=1), what="the loop stopped")
    assert hops == [0, 1, 2, 3, 4, 5]
    (letter,) = (await (await platform.backends.get(queue)).dead_letters(limit=5)).items
    assert "HopLimitExceeded" in (letter.last_error or "")
