"""The commit watermark and the leases of the Kafka backend, without a broker."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conveyor.queues.kafka.ledger import Ledger
from conveyor.queues.kafka.offsets import OffsetTracker
from conveyor.queues.kafka.records import HEADER_DELIVERIES, HEADER_NOT_BEFORE, Record

P0 = ("orders", 0)
P1 = ("orders", 1)


def test_only_the_contiguous_settled_prefix_is_committed() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        assert tracker.received(P0, offset)
    # Settled out of order: 1, 3 and 4 are done while 0 and 2 still run.
    for offset in (1, 3, 4):
        tracker.settle(P0, offset)
    assert tracker.to_commit() == {P0: 0}
    assert tracker.held() == 3
    tracker.settle(P0, 0)
    assert tracker.to_commit() == {P0: 2}  # 2 still runs: a crash now redelivers 2, 3, 4
    tracker.settle(P0, 2)
    assert tracker.to_commit() == {P0: 5}
    assert tracker.held() == 0
    assert tracker.to_commit() == {}  # nothing moved: nothing to send again


def test_partitions_are_independent_and_gaps_in_offsets_are_fine() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 15):  # 12-14: compacted away or transaction markers
        tracker.received(P0, offset)
    tracker.received(P1, 0)
    tracker.settle(P0, 10)
    tracker.settle(P0, 11)
    tracker.settle(P1, 0)
    assert tracker.to_commit() == {P0: 15, P1: 1}
    tracker.settle(P0, 15)
    assert tracker.to_commit() == {P0: 16}


def test_a_failed_commit_is_sent_again_and_old_records_are_ignored() -> None:
    tracker = OffsetTracker()
    tracker.received(P0, 0)
    tracker.settle(P0, 0)
    assert tracker.to_commit() == {P0: 1}
    tracker.unsent(P0, 1)
    assert tracker.to_commit() == {P0: 1}
    assert not tracker.received(P0, 0)  # fetched again: already tracked
    tracker.forget({P0})
    assert tracker.position(P0) is None
    assert tracker.to_commit() == {}


def record(offset: int, partition: int = 0, **headers: str) -> Record:
    return Record("orders", partition, offset, None, b"{}", headers, 1_000)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_leases_expire_hand_out_again_and_settle_only_with_the_current_lease() -> None:
    clock = Clock()
    ledger = Ledger(clock=clock)
    ledger.add([record(0), record(1)], now_ms=1_000)
    first, second = ledger.take(10, lease_s=30)
    assert (first.attempt, second.attempt) == (1, 1)
    assert ledger.take(10, lease_s=30) == []
    clock.now += 31
    again = next(lease for lease in ledger.take(10, lease_s=30) if lease.record.offset == 0)
    assert again.attempt == 2
    assert ledger.settle(first.receipt) is None  # that lease was lost
    assert ledger.settle(again.receipt) is not None
    assert ledger.to_commit() == {P0: 1}


def test_release_extend_and_retry_delays() -> None:
    clock = Clock()
    ledger = Ledger(clock=clock)
    ledger.add(
        [record(0), record(1, **{HEADER_NOT_BEFORE: "3000", HEADER_DELIVERIES: "2"})], now_ms=1_000
    )
    (lease,) = ledger.take(10, lease_s=5)  # offset 1 waits two more seconds
    assert lease.record.offset == 0
    assert ledger.extend(lease.receipt, 60)
    clock.now += 10
    (retried,) = ledger.take(10, lease_s=5)
    assert retried.record.offset == 1 and retried.attempt == 3
    assert ledger.release(retried.receipt)
    (back,) = ledger.take(10, lease_s=5)
    assert back.attempt == 3  # a release does not count as an attempt
    counts = ledger.counts()
    assert (counts.visible, counts.leased, counts.delayed) == (0, 2, 0)


def test_revoked_partitions_are_forgotten() -> None:
    ledger = Ledger(clock=Clock())
    ledger.add([record(0, 0), record(0, 1)], now_ms=0)
    leases = ledger.take(10, lease_s=5)
    ledger.drop({P1})
    settled = [ledger.settle(lease.receipt) is not None for lease in leases]
    assert sorted(settled) == [False, True]
    assert ledger.to_commit() == {P0: 1}


@given(st.permutations(range(20)), st.integers(min_value=0, max_value=20))
def test_the_commit_never_passes_an_unsettled_record(order: list[int], done: int) -> None:
    tracker = OffsetTracker()
    for offset in range(20):
        tracker.received(P0, offset)
    settled = set(order[:done])
    for offset in order[:done]:
        tracker.settle(P0, offset)
    position = tracker.position(P0)
    unsettled = [o for o in range(20) if o not in settled]
    # Everything before the position is settled; the position is the first open record.
    assert position == (unsettled[0] if unsettled else 20)
    assert tracker.held() == len([o for o in settled if o > (position or 0)])


def test_the_ledger_counts_the_bytes_it_holds() -> None:
    ledger = Ledger(clock=Clock())
    ledger.add([record(0), record(1), record(0, 1)], now_ms=0)
    assert ledger.held_bytes == 6
    first, *_ = ledger.take(1, lease_s=5)
    ledger.settle(first.receipt)
    ledger.drop({P1})
    assert ledger.held_bytes == 2 and len(ledger) == 1
