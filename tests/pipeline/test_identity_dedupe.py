"""A messageId seen in the last 24 hours is dropped wherever its key or raw partition: the same
id re-sent with another userId, first anonymous and then signed in, as an integer, in one batch,
and after the identity worker restarts on a machine with no local state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from kafkatest import TEST_CONSUMER, produce, read_topic, running, wait_for
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.registry import WorkerContext, default_registry
from wayline.streams.worker import Worker, WorkerOptions

pytestmark = pytest.mark.broker


def worker(name: str, kafka: KafkaConfig, topics: Topics, state_dir: Path) -> Worker:
    context = WorkerContext(
        topics=topics,
        kafka=kafka,
        options=WorkerOptions(consumer_overrides=dict(TEST_CONSUMER), state_dir=state_dir),
    )
    return default_registry()[name].create(context)


def track(message_id: Any, **ids: str) -> tuple[bytes, bytes]:
    event = {"type": "track", "event": "Product Viewed", "messageId": message_id, **ids}
    return str(next(iter(ids.values()))).encode(), orjson.dumps(event)


def resolved_ids(kafka: KafkaConfig, topics: Topics, expect: int) -> list[str]:
    found = read_topic(kafka, topics.resolved, expect=expect, settle_s=1.0)
    events = [m for m in found if m.header("wayline.kind") == b"event"]
    return sorted(orjson.loads(m.value or b"")["messageId"] for m in events)


def test_a_message_id_counts_once_whatever_its_key_partition_or_restart(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    first = [
        track("m-1", userId="u1"),
        track("m-2", anonymousId="a3"),
        track(42, userId="u4"),
        track("m-5", userId="u5"),
    ]
    again = [
        track("m-1", userId="u2"),  # another user id: another key, likely another partition
        track("m-2", userId="u3", anonymousId="a3"),  # signed in now
        track(42, userId="u9"),  # an integer id is its text: "42"
        track("m-5", userId="u5"),
        track("m-5", userId="u5"),
    ]
    produce(kafka, topics.raw, first + again)
    validate = worker("validate", kafka, topics, tmp_path / "v")
    identity = worker("identity", kafka, topics, tmp_path / "a")
    with running(validate), running(identity):
        wait_for(lambda: identity.stats().steps.get("duplicates_dropped", 0) == 5, 60, "dedupe")
    assert resolved_ids(kafka, topics, expect=4) == ["42", "m-1", "m-2", "m-5"]

    # the identity worker moves to a machine with no local state: the ids come back with it
    produce(kafka, topics.raw, [track("m-1", userId="u7"), track("m-6", userId="u6")])
    moved = worker("identity", kafka, topics, tmp_path / "b")
    with running(worker("validate", kafka, topics, tmp_path / "v")), running(moved):
        wait_for(lambda: moved.stats().steps.get("duplicates_dropped", 0) == 1, 60, "dedupe")
        wait_for(lambda: moved.stats().events_in >= 2, 30, "the new event")
    assert resolved_ids(kafka, topics, expect=5) == ["42", "m-1", "m-2", "m-5", "m-6"]
