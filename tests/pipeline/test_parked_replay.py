"""A merging event that a crash sends again, after the hand-off it waited for was taken in,
does not hold its profile for good: its copy needs nothing that is still to come.

On the survivor's partition, in this order (as identity's replay after a SIGKILL can leave
it): an event that merged L1 (waits), an event that merged L2 (waits), L2's hand-off, the copy
of the L2 event, L1's hand-off. Everything is applied once; nothing stays parked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from kafkatest import TEST_CONSUMER, produce, read_topic, running, wait_for
from wayline.profiles.state import empty_state
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.identity import HANDOFF, KIND_HEADER
from wayline.streams.registry import WorkerContext, default_registry
from wayline.streams.worker import WorkerOptions

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

S, L1, L2 = "p_survivor", "p_loser_one", "p_loser_two"


def event(message_id: str, at: str, merged: list[str]) -> dict[str, Any]:
    return {
        "type": "track", "event": "Product Viewed", "messageId": message_id,
        "timestamp": at, "originalTimestamp": at, "receivedAt": at, "sentAt": None,
        "profile_id": S, "merged": merged, "context": {"channel": "web"}, "properties": {},
        "traits": {}, "integrations": {}, "warnings": [], "linked": [["user_id", "u-1"]],
        "identifiers": {"user_id": "u-1", "anonymous_id": None, "email": None, "phone": None,
                        "device_id": None, "external": []},
    }  # fmt: skip


def handoff(loser: str) -> bytes:
    body = {"merged_id": loser, "profile_id": S, "version": 1, "as_of": 0, "state": empty_state()}
    return orjson.dumps(body)


def test_a_replayed_merging_event_after_its_hand_off_parks_nothing_for_good(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    first = event("m-1", "2026-03-01T10:00:00.000Z", [L1])
    second = event("m-2", "2026-03-01T10:05:00.000Z", [L2])
    key = S.encode()
    handoff_header = ((KIND_HEADER, HANDOFF),)
    produce(kafka, topics.resolved, [(key, orjson.dumps(first)), (key, orjson.dumps(second))])
    produce(kafka, topics.resolved, [(key, handoff(L2))], handoff_header)
    produce(kafka, topics.resolved, [(key, orjson.dumps(second))])  # the replayed copy
    produce(kafka, topics.resolved, [(key, handoff(L1))], handoff_header)
    later = event("m-3", "2026-03-01T10:10:00.000Z", [])
    produce(kafka, topics.resolved, [(key, orjson.dumps(later))])
    options = WorkerOptions(consumer_overrides=dict(TEST_CONSUMER), state_dir=tmp_path)
    context = WorkerContext(topics=topics, kafka=kafka, options=options)
    profile = default_registry()["profile"].create(context)
    with running(profile):

        def views() -> int:
            found = read_topic(kafka, topics.profiles, expect=0)
            docs = [orjson.loads(m.value or b"{}") for m in found if m.key == key and m.value]
            counts = docs[-1]["computed"]["event_counts"] if docs else {}
            return int(counts.get("Product Viewed", {}).get("all_time", 0))

        wait_for(lambda: views() == 3, 60, "three views, the later one not held")
    assert views() == 3  # the copy counted once
    found = read_topic(kafka, topics.profiles, expect=1)
    last = orjson.loads(next(m.value for m in reversed(found) if m.key == key) or b"{}")
    assert sorted(last["merged_from"]) == sorted([L1, L2])
