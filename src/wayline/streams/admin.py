"""Cluster operations: wait for a broker, create Wayline's topics, describe them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from wayline.schemas.errors import ConfigError, RetryableError
from wayline.schemas.topics import TopicSpec
from wayline.streams.clients import KafkaConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as the cluster reports it."""

    name: str
    partitions: int
    configs: dict[str, str]


def wait_until_ready(kafka: KafkaConfig, timeout_s: float = 30.0) -> int:
    """Block until the cluster answers a metadata request; returns the number of brokers.
    ``ConfigError`` naming ``WAYLINE_KAFKA_BOOTSTRAP`` when it does not within ``timeout_s``
    (librdkafka's own connection errors are kept out of the log meanwhile)."""
    admin = kafka.admin(log_level=0)
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            metadata = admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            if metadata.brokers:
                return len(metadata.brokers)
        except KafkaException as exc:
            last_error = exc
        time.sleep(0.1)
    said = f": {last_error}" if last_error else ""
    raise ConfigError(
        f"setting WAYLINE_KAFKA_BOOTSTRAP: no Kafka broker answers at {kafka.bootstrap} "
        f"within {timeout_s:.0f} s{said}"
    )


def ensure_topics(
    kafka: KafkaConfig, specs: list[TopicSpec], replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Existing topics are left alone; one with fewer partitions than asked is logged, since
    keyed state would be spread differently from what the workers expect.
    """
    admin = kafka.admin()
    existing = admin.list_topics(timeout=10).topics
    for spec in specs:
        have = existing.get(spec.name)
        if have is not None and len(have.partitions) != spec.partitions:
            log.warning(
                "topic %s has %d partitions, %d expected",
                spec.name,
                len(have.partitions),
                spec.partitions,
            )
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, replication_factor, config=s.configs) for s in missing],
        operation_timeout=30,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_for_metadata(kafka, [s.name for s in missing])
    return sorted(created)


def _wait_for_metadata(kafka: KafkaConfig, names: list[str], timeout_s: float = 15.0) -> None:
    admin = kafka.admin()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=5).topics
        if all(n in topics and not topics[n].error for n in names):
            return
        time.sleep(0.05)
    raise RetryableError(f"topics not visible in metadata after {timeout_s:.0f}s: {names}")


def describe_topics(kafka: KafkaConfig, names: list[str]) -> list[TopicState]:
    """Partition count and configs of each named topic that exists."""
    admin = kafka.admin()
    topics = admin.list_topics(timeout=10).topics
    present = [n for n in names if n in topics]
    if not present:
        return []
    futures = admin.describe_configs([ConfigResource("topic", n) for n in present])
    configs: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        try:
            entries = future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
            continue  # deleted since the metadata was read (Apache Kafka deletes asynchronously)
        configs[resource.name] = {k: v.value for k, v in entries.items() if v.value is not None}
    return [TopicState(n, len(topics[n].partitions), configs[n]) for n in present if n in configs]


def delete_topics(kafka: KafkaConfig, names: list[str]) -> None:
    """Delete topics (tests clean up after themselves); missing ones are ignored."""
    if not names:
        return
    admin = kafka.admin()  # keep the client alive until every future is resolved
    for future in admin.delete_topics(names, operation_timeout=30).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


class TopicWatch:
    """Tells whether a topic has gone from a cluster that still answers (a broker that came back
    empty): one admin client, reused for every check."""

    def __init__(self, kafka: KafkaConfig, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self._admin: AdminClient | None = None

    def lost(self) -> bool:
        if self._admin is None:
            self._admin = self.kafka.admin(log_level=0)
        try:
            metadata = self._admin.list_topics(timeout=2)
        except Exception:
            return False  # the cluster does not answer: that is not "the topic is gone"
        return bool(metadata.brokers) and self.topic not in metadata.topics
