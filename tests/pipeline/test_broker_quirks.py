"""Differences of the embedded broker from Apache Kafka that Wayline works around, pinned down
so that a broker upgrade that fixes (or changes) them is noticed."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from conftest import Broker
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig

pytestmark = [pytest.mark.broker, pytest.mark.embedded_only]


@pytest.fixture(autouse=True)
def _embedded(broker: Broker) -> None:
    assert broker.kind == "embedded", "these are the embedded broker's quirks: run them on it"


async def send_one(kafka: KafkaConfig, topic: str, idempotent: bool) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, acks="all", enable_idempotence=idempotent
    )
    try:
        await asyncio.wait_for(producer.start(), 10)
        await asyncio.wait_for(producer.send_and_wait(topic, b"{}", key=b"k"), 10)
    finally:
        await producer.stop()


def test_aiokafka_idempotent_producer_is_refused(kafka: KafkaConfig, topics: Topics) -> None:
    """aiokafka's InitProducerId gets an unknown error; its plain acks=all producer works, and
    so does librdkafka's idempotent producer. The HTTP services therefore produce with
    confluent-kafka (``streams/aioproducer.py``)."""
    asyncio.run(send_one(kafka, topics.raw, idempotent=False))
    with pytest.raises(KafkaError):
        asyncio.run(send_one(kafka, topics.raw, idempotent=True))
    producer = kafka.producer()  # enable.idempotence=true
    producer.produce(topics.raw, b"{}", b"k")
    assert producer.flush(10) == 0
