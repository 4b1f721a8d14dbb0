"""Wayline's topics on a real Kafka-protocol broker: names, partitions, cleanup policies."""

from __future__ import annotations

import socket
import uuid

import pytest

from kafkatest import wait_for
from wayline.schemas.errors import ConfigError
from wayline.schemas.topics import SUFFIXES, Cleanup, Topics
from wayline.streams.admin import delete_topics, describe_topics, ensure_topics
from wayline.streams.broker import EmbeddedBroker, free_port
from wayline.streams.clients import KafkaConfig

pytestmark = pytest.mark.broker

COMPACTED = {"profiles", "definitions"}


def test_topics_are_created_with_partitions_and_cleanup_policy(kafka: KafkaConfig) -> None:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:8]}.wayline", partitions=4)
    specs = topics.specs({"profile": ["profiles", "timers"]})
    try:
        created = ensure_topics(kafka, specs)
        assert created == sorted(s.name for s in specs)
        found = {t.name: t for t in describe_topics(kafka, [s.name for s in specs])}
        assert set(found) == {s.name for s in specs}
        for spec in specs:
            state = found[spec.name]
            expect_compact = spec.suffix in COMPACTED or spec.suffix.startswith("changelog.")
            assert state.configs["cleanup.policy"] == ("compact" if expect_compact else "delete")
            assert spec.cleanup == (Cleanup.COMPACT if expect_compact else Cleanup.DELETE)
            expected_partitions = 1 if spec.suffix in ("definitions", "events") else 4
            assert state.partitions == expected_partitions, spec.name
            # records stamped with their event time: a replayed history is not deleted as old
            event_time = not expect_compact and spec.suffix not in ("events.raw", "events.dlq")
            if event_time:
                assert state.configs.get("retention.ms") == "-1", spec.name
        assert topics.changelog("profile", "timers") in found
        assert topics.raw == f"{topics.prefix}.events.raw"
    finally:
        delete_topics(kafka, [s.name for s in specs])
    names = [s.name for s in specs]
    wait_for(lambda: describe_topics(kafka, names) == [], 30, "the topics to be gone")


def test_ensure_topics_is_idempotent(kafka: KafkaConfig, topics: Topics) -> None:
    assert ensure_topics(kafka, topics.specs()) == []
    assert len(describe_topics(kafka, [s.name for s in topics.specs()])) == len(SUFFIXES)


def test_broker_on_a_taken_port_names_the_setting() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(ConfigError, match=f"WAYLINE_BROKER_PORT.*{port}"):
            EmbeddedBroker(port=port).start()


def test_embedded_broker_stops_and_frees_its_port() -> None:
    port = free_port()
    broker = EmbeddedBroker(port=port)
    broker.start()
    pid = broker.pid
    assert pid is not None
    broker.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port is free again
