"""The relay: publishes outbox rows to their queues and marks them sent.

Several relays may run at once (one per `conveyor serve` process, plus `conveyor relay`
processes): each claims rows under a lease, so in normal operation no row is sent twice.
A relay that dies after the broker accepted a message but before marking its row sent
leaves the lease to expire; the row is then sent again with the same message id (FI-06),
which consumers deduplicate on.

The fast path: a write in a process whose relay is running inserts its outbox row
already leased to that relay (unless an earlier row of the same record is still
pending) and hands it over after the commit, so the relay publishes it without a claim
query. Batches of hand-offs go out without waiting for the confirms of the one before
(up to `max_publishing` at once), so a broker slow to confirm (syncing its disk) does
not hold back the messages after it. Marking rows sent runs beside the publishing, in
the background: one transaction for every row published since the last, at most every
`mark_interval_s` (on SQLite each commit holds the one write lock the record writes
need). Everything else (rows written while no relay ran here, rows waiting behind an
earlier one, retries, rows of a relay that died) goes through the claim, which runs
beside the hand-offs: a claim waits for the marks before it, the hand-offs never wait
for a claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
from collections import defaultdict
from dataclasses import dataclass

from conveyor.exceptions import ConveyorError, QueueNotFound
from conveyor.links.outbox import OutboxStore
from conveyor.links.rows import Due
from conveyor.queues.activity import PublishActivity
from conveyor.queues.pool import BackendPool
from conveyor.queues.registry import QueueRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayOptions:
    batch: int = 200
    #: How long a claimed row stays reserved for this relay.
    lease_s: float = 30.0
    #: Sleep between polls when nothing woke the relay sooner.
    poll_interval_s: float = 0.5
    #: Exponential backoff while a queue's backend is failing.
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    #: Keep sent rows this long (for the back-office and audits), then delete them.
    retention_s: float = 7 * 24 * 3600
    prune_interval_s: float = 300.0
    #: Rows handed over by this process's writes and not yet published, at most; past
    #: that, writes leave their rows to the claim (which bounds the memory held).
    max_handoffs: int = 2000
    #: How long a batch of handed-over rows may wait for the writes under way to hand
    #: over theirs too (they are published together); no wait when none are.
    handoff_linger_s: float = 0.03
    #: Published hand-offs are marked sent in one transaction at most this often.
    mark_interval_s: float = 0.05
    #: Batches of hand-offs published at once: while one waits for the broker's
    #: confirms (a broker syncing its disk can take tens of ms), the next goes out.
    #: Safe for order: a row is handed over only when no other row of its record is
    #: pending, so two batches in flight never hold changes of one record.
    max_publishing: int = 4


class Relay:
    def __init__(
        self,
        store: OutboxStore,
        queues: QueueRegistry,
        backends: BackendPool,
        options: RelayOptions | None = None,
        activity: PublishActivity | None = None,
    ) -> None:
        self.store = store
        self._activity = activity
        self._queues = queues
        self._backends = backends
        self.options = options or RelayOptions()
        self.id = f"{socket.gethostname()}:{secrets.token_hex(4)}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        #: A claim is due now rather than at the next poll.
        self._claim_wanted = False
        self._handoffs: list[Due] = []
        #: Queue id → until when (epoch ms) its rows are not taken by hand-off.
        self._failing: dict[str, int] = {}
        #: Hand-offs published and not yet marked sent: (row id, backend id).
        self._unmarked: list[tuple[int, str]] = []
        #: Marks them sent, in the background of the publishing (`_keep_marking`).
        self._marking: asyncio.Task[None] | None = None
        #: Mark what is left now, without waiting for the interval.
        self._mark_now = asyncio.Event()
        #: Batches of hand-offs being published (`_publish_handoffs`).
        self._publishing: set[asyncio.Task[None]] = set()
        #: The claim (and pruning) under way, beside the hand-offs (`_claim`).
        self._claiming: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Outbox rows are waiting for a claim: look now rather than at the next poll."""
        self._claim_wanted = True
        self._wake.set()

    def lease_for_handoff(self, queue_id: str) -> int | None:
        """The lease (an epoch ms deadline) a write may give its outbox row for
        `queue_id` before handing it over, or None when this relay cannot take one now:
        it is not running, is too far behind, or that queue's broker just failed (its
        rows then wait for claims, which keep to the retry backoff)."""
        if not self._running or self._stopping:
            return None
        if len(self._handoffs) >= self.options.max_handoffs:
            return None
        now = self.store.clock()
        if self._failing.get(queue_id, 0) > now:
            return None
        return now + int(self.options.lease_s * 1000)

    def hand_off(self, due: list[Due]) -> None:
        """Messages whose rows were leased to this relay in a write that has just
        committed: publish them."""
        self._handoffs.extend(due)
        self._wake.set()

    def stop(self) -> None:
        """Finish the batches at hand, then return from `run` (cancelling a relay in the
        middle of a database call would leave the connection in an unknown state)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Relay until stopped; failures are logged and retried, never fatal.

        This loop publishes the hand-offs and awaits nothing else: claims and pruning,
        which wait for the database (and a claim for the marks of the hand-offs before
        it), run beside it in a task of their own (`_claim`), one at a time. A hand-off
        never waits behind a mark or a claim."""
        loop = asyncio.get_running_loop()
        next_prune = loop.time() + self.options.prune_interval_s
        next_poll = loop.time()
        # A stop() that came before this task got to run counts: a platform opened and
        # closed at once must not wait for a relay that has just started.
        self._running = True
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self._publish_handoffs()
                except Exception:
                    log.warning("outbox relay failed; retrying", exc_info=True)
                claiming = self._claiming is not None and not self._claiming.done()
                if not claiming and (self._claim_wanted or loop.time() >= next_poll):
                    self._claim_wanted = False
                    next_poll = loop.time() + self.options.poll_interval_s
                    prune = loop.time() >= next_prune
                    if prune:
                        next_prune = loop.time() + self.options.prune_interval_s
                    self._claiming = asyncio.create_task(self._claim(prune=prune))
                    self._claiming.add_done_callback(lambda _: self._wake.set())
                    claiming = True
                if self._stopping or self._handoffs or (self._claim_wanted and not claiming):
                    continue
                # A claim under way wakes this loop when it ends; the next poll is due then.
                wait_s = None if claiming else max(0.0, next_poll - loop.time())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
        finally:
            self._running = False
            cancelled = await self._end_publishing()
            await self._marked()
            await self._release_handoffs()
            self._stopping = False  # stopped: it may run again
        if cancelled:
            raise asyncio.CancelledError  # it came while the batches at hand finished

    async def _claim(self, *, prune: bool) -> None:
        """One claim (and the pruning of old sent rows, when due); failures are logged,
        and the next poll tries again."""
        try:
            if await self.relay_once() >= self.options.batch:
                self._claim_wanted = True  # more is waiting
            if prune:
                await self.store.prune_sent(int(self.options.retention_s * 1000))
        except Exception:
            log.warning("outbox relay failed; retrying", exc_info=True)
        except asyncio.CancelledError:
            if not _cancelled_by_a_driver():
                raise  # the relay itself is being cancelled
            log.warning("outbox relay: a publish was cancelled; retrying", exc_info=True)

    async def _end_publishing(self) -> bool:
        """Let the batches being published (and the claim under way) finish; cancelled
        (the relay is, or comes to be while waiting), cut them short. True when the
        cancellation came here."""
        tasks = [*self._publishing, *([self._claiming] if self._claiming else [])]
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            for task in tasks:
                task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return True
        finally:
            self._claiming = None
        return False

    async def _publish_handoffs(self) -> None:
        """Start publishing a batch of hand-offs, once fewer than `max_publishing` are
        out; returns without waiting for the broker."""
        if not self._handoffs:
            return
        limit = max(1, self.options.max_publishing)
        while len(self._publishing) >= limit:  # a finished one leaves the set at once
            await asyncio.wait(self._publishing, return_when=asyncio.FIRST_COMPLETED)
        if self._stopping:
            return  # what is left is given back (`_release_handoffs`)
        if len(self._handoffs) < self.options.batch:
            # Writes under way now may be about to hand over rows too: those of all the
            # writes that ran together go in one batch, one publish (and one wait for
            # the broker's confirms) for them all. Under a stream of writes this is what
            # keeps the publishing's share of the process small.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.handoff_linger_s):
                    await self.store.db.writes.settled()
        rows, self._handoffs = (
            self._handoffs[: self.options.batch],
            self._handoffs[self.options.batch :],
        )
        task = asyncio.create_task(self._publish_handed_off(rows))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish_handed_off(self, rows: list[Due]) -> None:
        """Publish one batch of hand-offs, then have them marked sent. A batch that fails
        here stays leased to this relay and is sent again when its lease ends."""
        try:
            sent = await self._publish_rows(rows)
        except Exception:
            log.warning("outbox relay: publishing %d row(s) failed", len(rows), exc_info=True)
            return
        except asyncio.CancelledError:
            if not _cancelled_by_a_driver():
                raise
            log.warning("outbox relay: a publish was cancelled", exc_info=True)
            return
        if sent:
            self._unmarked.extend(sent)
            if self._marking is None or self._marking.done():
                self._marking = asyncio.create_task(self._keep_marking())

    async def _keep_marking(self) -> None:
        """Mark the published hand-offs sent: at once, then whatever was published
        meanwhile, at most every `mark_interval_s`, until none is left."""
        while self._unmarked:
            sent, self._unmarked = self._unmarked, []
            await self._mark_sent(sent)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.mark_interval_s):
                    await self._mark_now.wait()

    async def _mark_sent(self, sent: list[tuple[int, str]]) -> None:
        """Mark published rows sent. A row not marked (the database failed, the process
        died) stays leased: it is sent again, with the same message id, once its lease
        ends (FI-06)."""
        try:
            await self.store.mark_sent(self.id, sent)
        except Exception:
            log.warning(
                "could not mark %d published outbox row(s) sent; they are sent again when "
                "their lease ends",
                len(sent),
                exc_info=True,
            )

    async def _marked(self) -> None:
        """Mark the published hand-offs sent now, and wait until they are."""
        marking, self._marking = self._marking, None
        if marking is not None:
            self._mark_now.set()
            try:
                await marking
            finally:
                self._mark_now.clear()

    async def _release_handoffs(self) -> None:
        """Stopping: rows handed over and not published go back to the claim at once
        (rather than when their lease ends)."""
        rows, self._handoffs = self._handoffs, []
        try:
            await self.store.release(self.id, [row.row_id for row in rows])
        except Exception:
            log.warning(
                "could not give back %d outbox row(s); another relay takes them when their "
                "lease ends",
                len(rows),
                exc_info=True,
            )

    async def relay_once(self) -> int:
        """Claim one batch and publish it; the number of rows handled."""
        await self._marked()  # a claim sees the hand-offs this relay has published
        rows = await self.store.claim(
            self.id, limit=self.options.batch, lease_ms=int(self.options.lease_s * 1000)
        )
        sent = await self._publish_rows([row.due() for row in rows])
        if sent:
            await self.store.mark_sent(self.id, sent)
        return len(rows)

    async def _publish_rows(self, rows: list[Due]) -> list[tuple[int, str]]:
        """Publish rows' messages, queue by queue; the (row id, backend id) of those
        published, to be marked sent (rows that failed are marked for a retry here)."""
        by_queue: dict[str, list[Due]] = defaultdict(list)
        for row in rows:
            by_queue[row.queue_id].append(row)
        published = await asyncio.gather(
            *(self._publish(queue_id, group) for queue_id, group in by_queue.items())
        )
        return [pair for pairs in published for pair in pairs]

    async def _publish(self, queue_id: str, rows: list[Due]) -> list[tuple[int, str]]:
        ids = [row.row_id for row in rows]
        try:
            queue = await self._queues.get(queue_id)
        except QueueNotFound:
            await self.store.mark_failed(self.id, ids, error="the queue no longer exists")
            return []
        try:
            backend = await self._backends.get(queue)
            results = await backend.publish_batch([row.message for row in rows])
        except ConveyorError as exc:
            log.info("outbox: %d message(s) for %s wait: %s", len(rows), queue.name, exc.message)
            self._failing[queue_id] = self.store.clock() + int(self.options.backoff_max_s * 1000)
            await self.store.mark_attempt_failed(
                self.id, ids, error=exc.message, retry_in_ms=self._backoff_ms
            )
            return []
        self._failing.pop(queue_id, None)
        if self._activity is not None:
            self._activity.note(queue.id)
        return [(row.row_id, r.backend_id) for row, r in zip(rows, results, strict=True)]

    def _backoff_ms(self, attempts: int) -> int:
        ceiling = min(
            self.options.backoff_max_s, self.options.backoff_base_s * 2 ** min(attempts, 30)
        )
        return int(random.uniform(ceiling / 2, ceiling) * 1000)  # noqa: S311 - jitter, not crypto


def _cancelled_by_a_driver() -> bool:
    """A CancelledError caught here came from a driver cancelling a future of ours (a
    connection closed under a publish: a failed batch), not from this task being
    cancelled."""
    task = asyncio.current_task()
    return task is not None and not task.cancelling()
