"""Kafka queues, on librdkafka (confluent-kafka). See `backend` for the semantics."""

from __future__ import annotations

from conveyor.queues.kafka.backend import KafkaBackend

__all__ = ["KafkaBackend"]
