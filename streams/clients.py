"""Kafka client configuration shared by every producer, consumer and admin client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient


@dataclass(frozen=True)
class KafkaConfig:
    """Where the cluster is, plus librdkafka options passed through unchanged."""

    bootstrap: str
    options: dict[str, Any] = field(default_factory=dict)

    def base(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **self.options}

    def producer(self, **overrides: Any) -> Producer:
        """An idempotent, acks=all producer that partitions keys like Java and aiokafka.

        librdkafka's default partitioner (CRC32) differs from murmur2: keys written by other
        clients would land on other partitions.
        """
        config = {
            **self.base(),
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            **overrides,
        }
        return Producer(config)

    def consumer(self, group: str, **overrides: Any) -> Consumer:
        """A consumer-group member that never auto-commits: workers commit after their flush."""
        config = {
            "bootstrap.servers": self.bootstrap,
            "fetch.wait.max.ms": 50,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "partition.assignment.strategy": "cooperative-sticky",
            **self.options,  # an operator's librdkafka options may tune the defaults above
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **overrides,
        }
        return Consumer(config)

    def admin(self) -> AdminClient:
        return AdminClient(self.base())
