"""The `Database.write()` transactions under way in this process, and a wait for those
begun so far to end.

The outbox relay batches with it: the rows of writes that run at the same time are
published together, one broker round trip for all of them (a group commit), and a
write that runs alone is published at once.
"""

from __future__ import annotations

import asyncio


class WritesInFlight:
    def __init__(self) -> None:
        self._next = 0
        #: Open tickets, oldest first (dicts keep insertion order; tickets only grow).
        self._open: dict[int, None] = {}
        #: (the last ticket to wait for, the waiter), for `settled()`.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __len__(self) -> int:
        return len(self._open)

    def begin(self) -> int:
        """A write starts: its ticket, to give back with `end`."""
        ticket = self._next
        self._next += 1
        self._open[ticket] = None
        return ticket

    def end(self, ticket: int) -> None:
        """The write holding `ticket` is over (committed, rolled back or failed)."""
        del self._open[ticket]
        if self._waiters:
            self._wake()

    async def settled(self) -> None:
        """Return once every write begun before this call has ended (later ones do not
        count: a steady stream of writes cannot keep the caller waiting)."""
        last = self._next - 1
        if self._oldest() > last:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((last, waiter))
        await waiter  # a waiter cancelled here is dropped at the next `end`

    def _oldest(self) -> int:
        return next(iter(self._open), self._next)

    def _wake(self) -> None:
        oldest = self._oldest()
        waiting = []
        for last, waiter in self._waiters:
            if waiter.done():
                continue
            if last < oldest:
                waiter.set_result(None)
            else:
                waiting.append((last, waiter))
        self._waiters = waiting
