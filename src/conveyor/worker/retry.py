"""Retry delays: exponential backoff with full jitter.

The delay before attempt n+1 is drawn uniformly from [0, min(max, base * 2**(n-1))]:
the "full jitter" of the AWS Architecture Blog's "Exponential Backoff And Jitter",
which spreads the retries of messages that failed together (an outage) instead of
sending them back in one wave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from conveyor.queues.model import QueueOptions

#: Beyond this exponent the cap has long been reached; avoids huge floats.
_MAX_EXPONENT = 60


def backoff_cap_s(attempt: int, base_s: float, max_s: float) -> float:
    """The upper bound of the delay after the `attempt`-th delivery failed (1-based)."""
    exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
    return max(0.0, min(max_s, base_s * 2.0**exponent))


@dataclass(frozen=True)
class Backoff:
    """Draws retry delays for one queue's options."""

    base_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def of(cls, options: QueueOptions, rng: random.Random | None = None) -> Backoff:
        rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        return cls(options.retry_backoff_s, options.retry_backoff_max_s, rng)

    def delay_s(self, attempt: int) -> float:
        return self.rng.uniform(0.0, backoff_cap_s(attempt, self.base_s, self.max_s))
