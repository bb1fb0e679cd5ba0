"""Garbage collection in Conveyor's long-running processes.

A full collection scans every object the process holds. In a server most of them are
what start-up made (modules, the app, SQLAlchemy's compiled statements), which never
becomes garbage, and scanning them stops the event loop for tens of milliseconds: a
stall every few seconds under load, and the tail of every latency (the outbox relay's
commit → broker p99 was 50-100 ms in the runs that had one and ~10 ms in those that
did not). `freeze_start_up()` takes what start-up made out of the collector's reach, so
later full collections scan only what the running process makes.
"""

from __future__ import annotations

import gc


def freeze_start_up() -> None:
    """Collect what start-up left as garbage, then freeze the rest (`gc.freeze`). For a
    process's own start, once: what is alive now is never collected afterwards."""
    gc.collect()
    gc.freeze()
