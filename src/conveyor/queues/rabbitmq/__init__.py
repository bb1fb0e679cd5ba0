"""RabbitMQ queues (aio-pika).

A registered queue of type `rabbitmq` is a durable RabbitMQ queue of the same name,
with helpers Conveyor declares itself (`<name>.dlq`, `<name>.delay.<N>s`). One
module per concern:

- `backend`: the `QueueBackend` implementation, publishing with confirms;
- `connection`: the robust connection and its timeouts;
- `consumer`: receiving with a bounded prefetch;
- `leases`: the visibility timeout RabbitMQ lacks, kept by the receiver;
- `settle`: ack, retry, release and dead-letter, as confirmed copies then acks;
- `wire`: ids, attempts and times in AMQP properties and headers;
- `frames`: AMQP timestamps out of `datetime`'s range decoded without a dropped connection;
- `dead_letters`: browsing, redriving and deleting the `.dlq`;
- `topology`: the queue's helpers, declaring them, their sizes;
- `errors`: driver exceptions translated into Conveyor's.
"""

from __future__ import annotations

from conveyor.queues.rabbitmq.backend import RabbitMQBackend
from conveyor.queues.rabbitmq.connection import Timeouts

__all__ = ["RabbitMQBackend", "Timeouts"]
