from __future__ import annotations

import random

import pytest

from conveyor.queues.model import QueueOptions
from conveyor.worker.retry import Backoff, backoff_cap_s


@pytest.mark.parametrize(
    ("attempt", "cap"), [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0)]
)
def test_the_cap_doubles_per_attempt_up_to_the_maximum(attempt: int, cap: float) -> None:
    assert backoff_cap_s(attempt, base_s=1, max_s=300) == cap


def test_huge_attempt_numbers_stay_at_the_maximum() -> None:
    assert backoff_cap_s(10**9, base_s=1, max_s=60) == 60
    assert backoff_cap_s(5, base_s=0, max_s=60) == 0


def test_full_jitter_spreads_delays_over_the_whole_range() -> None:
    backoff = Backoff(base_s=1, max_s=300, rng=random.Random(7))
    delays = [backoff.delay_s(4) for _ in range(2000)]
    assert all(0 <= d <= 8 for d in delays)
    assert min(delays) < 0.5 and max(delays) > 7.5  # the whole [0, cap] range
    assert 3.5 < sum(delays) / len(delays) < 4.5  # uniform: mean is half the cap


def test_backoff_reads_the_queue_options() -> None:
    options = QueueOptions(retry_backoff_s=2, retry_backoff_max_s=5)
    backoff = Backoff.of(options, random.Random(1))
    assert (backoff.base_s, backoff.max_s) == (2, 5)
    assert all(0 <= backoff.delay_s(30) <= 5 for _ in range(100))
