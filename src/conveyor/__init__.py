"""Conveyor: queues, workers, records and a back-office for wiring systems together.

The names here are the handler API that users write against:

```python
from conveyor import Context, handler

@handler("send_email", auto_ack=True)
async def send_email(context: Context) -> None:
    await context.http.post("https://mail.example/api", json=context.message.payload)
```
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from conveyor.version import __version__

if _typing.TYPE_CHECKING:
    from conveyor.exceptions import Reject, Retry
    from conveyor.worker.context import Context, Message, Runtime
    from conveyor.worker.handlers import HandlerRegistry, handler

__all__ = [
    "Context",
    "HandlerRegistry",
    "Message",
    "Reject",
    "Retry",
    "Runtime",
    "__version__",
    "handler",
]

# Imported on first use: the `conveyor` command starts without the worker's modules.
_HOMES = {
    "Context": "conveyor.worker.context",
    "HandlerRegistry": "conveyor.worker.handlers",
    "Message": "conveyor.worker.context",
    "Reject": "conveyor.exceptions",
    "Retry": "conveyor.exceptions",
    "Runtime": "conveyor.worker.context",
    "handler": "conveyor.worker.handlers",
}


def __getattr__(name: str) -> _typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
