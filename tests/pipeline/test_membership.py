"""A worker's consumer that has lost its group coordinator while the cluster answers is
replaced, and the new one takes the partitions back where the old one committed; while the
cluster itself is away, nothing is replaced (waiting for it is right)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import FAST_GROUPS, Broker
from kafkatest import produce, wait_for
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.membership import Callbacks, Membership

pytestmark = [pytest.mark.broker, pytest.mark.faults, pytest.mark.timeout(180)]

LOST = orjson.dumps({"cgrp": {"state": "query-coord", "join_state": "init", "stateage": 90_000}})


@dataclass
class Member:
    """A membership with what its callbacks and its consumer saw."""

    membership: Membership
    owned: set[int] = field(default_factory=set)
    revoked: list[int] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)

    def poll(self) -> None:
        for message in self.membership.consumer.consume(100, 0.2):
            if message.error() is None:
                self.values.append(message.value() or b"")


@pytest.fixture
def seen(kafka: KafkaConfig, topics: Topics) -> Iterator[Member]:
    """A member of a group of its own on ``topics.raw``; its consumer closed before the
    topics are deleted."""
    member = join(kafka, topics)
    yield member
    member.membership.consumer.close()


def join(kafka: KafkaConfig, topics: Topics) -> Member:
    def assigned(_c: Consumer, partitions: list[TopicPartition]) -> None:
        joined.owned |= {p.partition for p in partitions}

    def revoked(_c: Consumer, partitions: list[TopicPartition]) -> None:
        joined.owned -= {p.partition for p in partitions}
        joined.revoked += [p.partition for p in partitions]

    callbacks = Callbacks(assigned, revoked)
    group = f"{topics.prefix}.membership"
    joined = Member(Membership(kafka, "test", group, [topics.raw], callbacks, FAST_GROUPS, 30.0))
    return joined


def settled(seen: Member, values: int) -> bool:
    seen.poll()
    return seen.owned == {0, 1, 2} and len(seen.values) >= values


def test_a_consumer_without_a_coordinator_is_replaced_and_resumes_where_it_committed(
    kafka: KafkaConfig, topics: Topics, seen: Member
) -> None:
    first = [(f"k{i}".encode(), f"first-{i}".encode()) for i in range(30)]
    produce(kafka, topics.raw, first)
    wait_for(lambda: settled(seen, 30), 60, "the first 30 records")
    consumer = seen.membership.consumer
    consumer.commit(offsets=consumer.position(consumer.assignment()), asynchronous=False)
    old = consumer
    seen.membership.watch.observe(LOST.decode())  # as librdkafka reports a lost coordinator
    assert seen.membership.renewed_if_lost()
    assert seen.membership.consumer is not old
    assert sorted(seen.revoked) == [0, 1, 2]  # the old consumer gave its partitions up
    assert seen.membership.watch.lost_for() == 0.0  # a new consumer, a new count
    second = [(f"k{i}".encode(), f"second-{i}".encode()) for i in range(30)]
    produce(kafka, topics.raw, second)
    seen.values.clear()
    wait_for(lambda: settled(seen, 30), 60, "the next 30 records")
    assert sorted(seen.values) == sorted(v for _, v in second)  # none repeated, none lost


def test_nothing_is_replaced_while_the_cluster_is_away(
    broker: Broker, kafka: KafkaConfig, topics: Topics, seen: Member
) -> None:
    if not broker.pids:
        pytest.fail("this test pauses a broker this test session started")
    produce(kafka, topics.raw, [(b"k", b"v")])
    wait_for(lambda: settled(seen, 1), 60, "the partitions")
    old = seen.membership.consumer
    broker.pause()
    try:
        seen.membership.watch.observe(LOST.decode())
        assert not seen.membership.renewed_if_lost()
    finally:
        broker.resume()
    assert seen.membership.consumer is old
    assert seen.revoked == []
