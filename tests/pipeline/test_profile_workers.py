"""validate → identity → profile on the real broker, checked against the in-process reference.

Customer journeys (anonymous web visits, an app login, an e-mail click with only the address, a
store order with only the phone, a final identify linking them) are sent with their identifiers
spread over every raw partition at once, then again shuffled and duplicated: the profiles must
equal those of ``ProfileBook`` over the clean log, every event counted once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from journeys import START, journeys, raw_key, reference, shuffled_and_duplicated, visible
from kafkatest import TEST_CONSUMER, produce, read_topic, read_transitions, running, wait_for
from wayline.schemas.codec import decode
from wayline.schemas.topics import Topics
from wayline.segments.compiler import Compiled, SegmentDef, compile_segments
from wayline.streams.clients import KafkaConfig
from wayline.streams.registry import WorkerContext, default_registry
from wayline.streams.worker import Worker, WorkerOptions

pytestmark = pytest.mark.broker


def latest_profiles(kafka: KafkaConfig, topic: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any] | None] = {}
    for message in read_topic(kafka, topic, expect=1):
        assert message.key is not None
        latest[message.key.decode()] = decode(message.value) if message.value else None
    return {pid: doc for pid, doc in latest.items() if doc is not None}


@contextmanager
def pipeline(
    kafka: KafkaConfig, topics: Topics, state_dir: Path, segments: Compiled | None = None
) -> Iterator[list[Worker]]:
    registry = default_registry()
    context = WorkerContext(
        topics=topics,
        kafka=kafka,
        options=WorkerOptions(consumer_overrides=dict(TEST_CONSUMER), state_dir=state_dir),
        segments=segments,
    )
    workers = [registry[name].create(context) for name in ("validate", "identity", "profile")]
    with ExitStack() as stack:
        for worker in workers:
            stack.enter_context(running(worker))
        yield workers


def run(
    kafka: KafkaConfig,
    topics: Topics,
    tmp: Path,
    events: list[dict[str, Any]],
    unresolvable: int = 0,
    segments: Compiled | None = None,
) -> list[Worker]:
    distinct = len({e["messageId"] for e in events}) - unresolvable
    produce(kafka, topics.raw, [(raw_key(e), orjson.dumps(e)) for e in events])
    with pipeline(kafka, topics, tmp, segments) as workers:
        _validate, identity, profile = workers

        def settled() -> bool:
            merges = identity.stats().steps.get("merges", -1)
            steps = profile.stats().steps
            return (
                identity.stats().events_in >= distinct + unresolvable
                and steps.get("events_applied", 0) >= distinct
                and steps.get("handoffs_absorbed", 0) >= merges
            )

        wait_for(settled, 90, "every event and merge hand-off in the profiles")
    return workers


@pytest.mark.parametrize("perturb", [False, True], ids=["simultaneous", "shuffled+duplicated"])
def test_journeys_end_in_one_profile_each_identical_to_the_reference(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path, perturb: bool
) -> None:
    customers = 150
    clean = journeys(customers)
    expected = reference(clean)
    assert len(expected) == customers

    sent = shuffled_and_duplicated(clean, random.Random(5)) if perturb else clean
    workers = run(kafka, topics, tmp_path, sent)

    got = {pid: visible(doc) for pid, doc in latest_profiles(kafka, topics.profiles).items()}
    assert sorted(got) == sorted(expected)
    for pid, doc in expected.items():
        assert got[pid] == doc, pid
    total = sum(sum(d["computed"]["event_counts"].values()) for d in got.values())
    assert total == len(clean)  # every event counted exactly once
    identity = workers[1].stats().steps
    assert identity["merges"] >= customers  # at least the anonymous profile of each was merged


SEGMENTS = [
    SegmentDef("viewer", {"performed": {"event": "Product Viewed", "at_least": 1}}),
    SegmentDef("app_user", {"performed": {"event": "Signed In", "at_least": 1}}),
    SegmentDef("buyer", {"computed.order_count": {"gte": 1}}),
    SegmentDef("never_bought", {"not": {"performed": {"event": "Order Completed"}}}),
]


def test_the_transitions_of_each_profile_id_add_up_to_its_memberships(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    """A service reading ``wayline.segments`` keeps memberships per profile id from enter and
    exit alone: through every merge of anonymous, app, e-mail and store profiles, an id never
    exits what it did not enter, never enters twice, and ends holding what its profile document
    lists (nothing once merged away)."""
    clean = journeys(60)
    run(kafka, topics, tmp_path, shuffled_and_duplicated(clean, random.Random(8)),
        segments=compile_segments(SEGMENTS))  # fmt: skip
    held: dict[str, set[str]] = {}
    for message in read_topic(kafka, topics.segments, expect=1):
        record = orjson.loads(message.value or b"{}")
        assert message.key == record["profile_id"].encode()
        assert all(t["profile_id"] == record["profile_id"] for t in record["transitions"])
    for body in read_transitions(kafka, topics.segments, expect=1):
        segments = held.setdefault(body["profile_id"], set())
        if body["transition"] == "enter":
            assert body["segment"] not in segments, body
            segments.add(body["segment"])
        else:
            assert body["segment"] in segments, body
            segments.discard(body["segment"])
    profiles = latest_profiles(kafka, topics.profiles)
    assert len(profiles) == 60
    for pid, segments in held.items():
        assert segments == set(profiles[pid]["segments"] if pid in profiles else ()), pid
    buyers = [pid for pid, doc in profiles.items() if "buyer" in doc["segments"]]
    assert len(buyers) == 60  # every journey ends with a store order


def test_junk_ids_and_limit_breaches_never_merge(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    t = START.isoformat()
    events = [
        {"type": "track", "event": "Tablet Used", "userId": f"clerk-{n}", "messageId": f"t-{n}",
         "anonymousId": "undefined", "timestamp": t,
         "context": {"channel": "store", "device": {"id": "shared-tablet"}}}
        for n in range(6)
    ]  # fmt: skip
    events.append(
        {"type": "track", "event": "Only Junk", "anonymousId": "[object Object]",
         "messageId": "junk-1", "timestamp": t, "context": {"channel": "web"}}
    )  # fmt: skip
    run(kafka, topics, tmp_path, events, unresolvable=1)
    profiles = latest_profiles(kafka, topics.profiles)
    assert sorted(u for d in profiles.values() for u in d["identifiers"]["user_id"]) == sorted(
        f"clerk-{n}" for n in range(6)
    )
    assert all(len(d["identifiers"]["user_id"]) == 1 for d in profiles.values())
    log = [orjson.loads(m.value or b"") for m in read_topic(kafka, topics.identity, expect=11)]
    reasons = sorted(r["reason"] for r in log if r["kind"] == "refused")
    assert reasons.count("blocked value 'undefined'") == 6
    assert reasons.count("blocked value '[object Object]'") == 1
    limit = [r for r in log if r["kind"] == "refused" and r["reason"].startswith("limit: user_id")]
    assert len(limit) == 5  # the first clerk got the tablet, the next five were refused
    assert not [r for r in log if r["kind"] == "merge"]
    dead = read_topic(kafka, topics.dlq, expect=1)
    assert [(m.key, m.header("wayline.dlq.reason")) for m in dead] == [
        (b"anonymous_id:[object Object]", b"blocked_identifier")
    ]
