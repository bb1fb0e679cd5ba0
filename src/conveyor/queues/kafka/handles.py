"""Keeping librdkafka handles out of Python's cyclic garbage collector.

A client whose callbacks are bound methods of its owner forms a reference cycle, so
it is freed by the cyclic collector, in whatever thread happens to trigger a
collection. When that is a thread of librdkafka's own (admin results run Python code
in its background thread), destroying a handle from it kills the process. So:
callbacks refer to their owner weakly, and owners drop their handles on close, in a
thread of ours.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


def weak_callback(method: Callable[..., Any]) -> Callable[..., None]:
    """`method` (a bound method), called only while its object is alive."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> None:
        bound = ref()
        if bound is not None:
            bound(*args)

    return call
