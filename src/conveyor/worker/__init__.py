"""Workers: run a Python handler for each message of a queue.

`handlers.py` (the `@handler` decorator and registries), `context.py` (what a handler
receives), `dispatch.py` (one delivery → a verdict), `outcome.py` (settling and
counters), `leases.py` (keeping leases alive), `retry.py` (backoff), `runner.py`
(the consume loop), `heartbeat.py` (the beat that keeps `conveyor.workers` fresh),
`signals.py` (SIGTERM/SIGINT).
"""

from __future__ import annotations
