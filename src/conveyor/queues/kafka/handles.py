"""Keeping librdkafka handles out of Python's cyclic garbage collector.

A client whose callbacks are bound methods of its owner forms a reference cycle, so
it is freed by the cyclic collector, in whatever thread happens to trigger a
collection. When that is a thread of librdkafka's own (admin results and delivery
reports run Python code there), destroying a handle from it kills the process. So:
callbacks refer to their owner weakly, and owners drop their handles on close, in a
thread of ours.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any


def weak_callback(method: Callable[..., Any]) -> Callable[..., None]:
    """`method` (a bound method), called only while its object is alive."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> None:
        bound = ref()
        if bound is not None:
            bound(*args)

    return call


_gc_lock = threading.Lock()
_gc_holds = 0


@contextlib.contextmanager
def no_gc_in_librdkafka_threads() -> Iterator[None]:
    """Hold off automatic garbage collection while an admin request is out: librdkafka
    resolves its futures by running Python code in a thread of its own, and a collection
    started there that frees a client destroys it from that thread, which kills the
    process (confluent-kafka-python #1761, #2129). Nested and concurrent holds count."""
    global _gc_holds
    with _gc_lock:
        if _gc_holds == 0:
            gc.disable()
        _gc_holds += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holds -= 1
            if _gc_holds == 0:
                gc.enable()
