"""`WritesInFlight`: the wait the outbox relay batches with."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.db.in_flight import WritesInFlight


async def test_settled_returns_at_once_when_no_write_is_under_way() -> None:
    writes = WritesInFlight()
    writes.end(writes.begin())
    async with asyncio.timeout(1):
        await writes.settled()
    assert len(writes) == 0


async def test_settled_waits_for_the_writes_begun_before_it_and_no_later_ones() -> None:
    writes = WritesInFlight()
    first, second = writes.begin(), writes.begin()
    waiter = asyncio.create_task(writes.settled())
    await asyncio.sleep(0)  # it is waiting
    later = writes.begin()  # a stream of writes must not keep the waiter waiting

    writes.end(second)
    await asyncio.sleep(0)
    assert not waiter.done()  # `first` is still under way
    writes.end(first)
    async with asyncio.timeout(1):
        await waiter
    assert len(writes) == 1
    writes.end(later)


async def test_a_waiter_that_gave_up_is_dropped() -> None:
    writes = WritesInFlight()
    ticket = writes.begin()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await writes.settled()
    writes.end(ticket)  # no error setting the result of a cancelled waiter
    assert writes._waiters == []
