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

from conveyor.exceptions import Reject, Retry
from conveyor.version import __version__
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
