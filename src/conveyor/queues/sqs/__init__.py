"""Amazon SQS (or any SQS-compatible server) as a queue backend; needs `conveyor[sqs]`."""

from __future__ import annotations

from conveyor.queues.sqs.backend import SQSBackend

__all__ = ["SQSBackend"]
