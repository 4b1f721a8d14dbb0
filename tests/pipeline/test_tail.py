"""A view's consumer that stops fetching while its partitions grow is replaced at the positions
it had reached: nothing read twice, nothing missed. Idle at the end, or with the cluster away,
it is left alone."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from conftest import Broker
from kafkatest import produce
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.tail import Tail

pytestmark = [pytest.mark.broker, pytest.mark.faults, pytest.mark.timeout(180)]


@pytest.fixture
def tail(kafka: KafkaConfig, topics: Topics) -> Iterator[Tail]:
    start = [TopicPartition(topics.raw, p, OFFSET_BEGINNING) for p in range(3)]
    following = Tail(kafka, "test view", start, {"fetch.wait.max.ms": 20}, stuck_after_s=2.0)
    yield following
    following.close()


def read(tail: Tail, want: int, for_s: float) -> list[bytes]:
    """What ``tail`` gives in ``for_s`` seconds, or as soon as it gave ``want``."""
    values: list[bytes] = []
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline and len(values) < want:
        values += [m.value() or b"" for m in tail.consume(100, 0.1) if m.error() is None]
    return values


def records(prefix: str, n: int) -> list[tuple[bytes, bytes]]:
    return [(f"k{i}".encode(), f"{prefix}-{i}".encode()) for i in range(n)]


def test_a_tail_that_stopped_fetching_goes_on_from_where_it_was(
    kafka: KafkaConfig, topics: Topics, tail: Tail
) -> None:
    first = records("first", 30)
    produce(kafka, topics.raw, first)
    assert sorted(read(tail, 30, 60)) == sorted(v for _, v in first)
    tail.consumer.pause(tail.consumer.assignment())  # as a consumer that lost its brokers
    second = records("second", 30)
    produce(kafka, topics.raw, second)
    got = read(tail, 30, 30)
    assert tail.renewed == 1
    assert sorted(got) == sorted(v for _, v in second), "each record once, none missed"


def test_a_tail_idle_at_the_end_is_left_alone(
    kafka: KafkaConfig, topics: Topics, tail: Tail
) -> None:
    produce(kafka, topics.raw, records("only", 10))
    assert len(read(tail, 10, 60)) == 10
    assert read(tail, 1, 6) == []
    assert tail.renewed == 0


def test_a_tail_waits_while_the_cluster_is_away(
    broker: Broker, kafka: KafkaConfig, topics: Topics, tail: Tail
) -> None:
    if not broker.pids:
        pytest.fail("this test pauses a broker this test session started")
    produce(kafka, topics.raw, records("before", 10))
    assert len(read(tail, 10, 60)) == 10
    broker.pause()
    try:
        assert read(tail, 1, 15) == []
        assert tail.renewed == 0
    finally:
        broker.resume()
    produce(kafka, topics.raw, records("after", 5))
    assert len(read(tail, 5, 60)) == 5
