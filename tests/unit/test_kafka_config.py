"""Kafka settings from a registered queue, and error texts without secrets."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from conveyor.exceptions import ConnectionFailed, PublishFailed, ValidationError
from conveyor.queues.kafka.config import KafkaConfig, bootstrap_servers
from conveyor.queues.kafka.errors import map_errors
from conveyor.queues.model import Credentials, QueueType, check_url
from tests.kafka.support import kafka_queue


def test_bootstrap_servers_accept_the_kafka_prefix_and_spaces() -> None:
    assert bootstrap_servers("kafka://h1:9092, h2:9093") == "h1:9092,h2:9093"
    assert bootstrap_servers("10.0.0.1:9092") == "10.0.0.1:9092"


def test_a_plain_queue_is_durable_and_commits_by_hand() -> None:
    config = KafkaConfig.of(kafka_queue("orders", url="kafka://h:9092"), Credentials(None, None))
    producer, consumer = config.producer(), config.consumer()
    assert producer["acks"] == "all" and producer["enable.idempotence"] is True
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["group.id"] == "conveyor.orders"
    assert "security.protocol" not in producer
    assert (config.retry_topic, config.dlq_topic) == ("orders.retry", "orders.dlq")


def test_credentials_mean_sasl_with_the_chosen_mechanism() -> None:
    queue = kafka_queue(
        "orders", sasl_mechanism="SCRAM-SHA-256", tls=True, consumer_group="billing"
    )
    config = KafkaConfig.of(queue, Credentials("ana", "s3cret"))
    settings = config.consumer()
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.mechanism"] == "SCRAM-SHA-256"
    assert (settings["sasl.username"], settings["sasl.password"]) == ("ana", "s3cret")
    assert settings["group.id"] == "billing"
    assert "s3cret" not in repr(config)


def test_errors_are_translated_and_never_show_the_password() -> None:
    error = KafkaError(KafkaError._AUTHENTICATION, "login as ana with s3cret refused")
    with pytest.raises(ConnectionFailed) as caught, map_errors("cannot connect", secret="s3cret"):
        raise KafkaException(error)
    assert "authentication failed" in caught.value.message
    assert "s3cret" not in caught.value.message
    assert isinstance(caught.value.__cause__, KafkaException)

    with pytest.raises(PublishFailed), map_errors("cannot publish", default=PublishFailed):
        raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    with pytest.raises(PublishFailed), map_errors("cannot publish", default=PublishFailed):
        raise BufferError("Local: Queue full")


def test_credentials_in_a_kafka_url_do_not_hide_a_private_host() -> None:
    with pytest.raises(ValidationError, match="not allowed"):
        check_url(QueueType.KAFKA, "kafka://ana:s3cret@127.0.0.1:9092", deny_private=True)
    url = "kafka://ana:s3cret@broker.example.com:9092"
    assert check_url(QueueType.KAFKA, url, deny_private=True) == url
