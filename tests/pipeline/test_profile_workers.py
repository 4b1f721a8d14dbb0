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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafkatest import TEST_CONSUMER, produce, read_topic, running, wait_for

from wayline.profiles.book import ProfileBook
from wayline.profiles.view import snapshot
from wayline.schemas.codec import decode
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.registry import WorkerContext, default_registry
from wayline.streams.worker import Worker, WorkerOptions

pytestmark = pytest.mark.broker

START = datetime(2026, 3, 1, 9, tzinfo=UTC)


def journey(c: int, rng: random.Random) -> list[dict[str, Any]]:
    anon, user, email, phone = f"anon-{c}", f"user-{c}", f"c{c}@example.com", f"+49301234{c:04d}"
    t = START + timedelta(minutes=rng.randrange(0, 600))
    plan_a, plan_b = rng.choice(["free", "plus"]), rng.choice(["pro", "team"])
    steps: list[tuple[str, dict[str, Any]]] = [
        ("web", {"type": "page", "anonymousId": anon, "name": "Home"}),
        ("web", {"type": "track", "anonymousId": anon, "event": "Product Viewed",
                 "properties": {"product_id": f"sku-{c % 7}", "category": "shoes"}}),
        ("app", {"type": "track", "userId": user, "anonymousId": anon, "event": "Signed In",
                 "context": {"traits": {"plan": plan_a}}}),
        ("email", {"type": "track", "event": "Email Link Clicked",
                   "context": {"traits": {"email": email}}}),
        ("store", {"type": "track", "event": "Order Completed",
                   "context": {"traits": {"phone": phone}},
                   "properties": {"order_id": f"o-{c}", "revenue": 10.0 + c}}),
        ("app", {"type": "identify", "userId": user,
                 "traits": {"email": email, "phone": phone, "plan": plan_b}}),
        ("web", {"type": "track", "anonymousId": anon, "event": "Product Added",
                 "properties": {"product_id": "sku-1", "price": 5.0}}),
    ]  # fmt: skip
    events = []
    for i, (channel, body) in enumerate(steps):
        t += timedelta(minutes=rng.randrange(1, 30))
        context = {**body.get("context", {}), "channel": channel}
        events.append({**body, "context": context, "messageId": f"m-{c}-{i}",
                       "timestamp": t.isoformat()})  # fmt: skip
    return events


def raw_key(event: dict[str, Any]) -> bytes:
    context = event["context"]
    traits = context.get("traits", {})
    key = event.get("userId") or event.get("anonymousId") or traits.get("email") or traits["phone"]
    return str(key).encode()


def shuffled_and_duplicated(
    events: list[dict[str, Any]], rng: random.Random
) -> list[dict[str, Any]]:
    """10 % of events moved to a random place within 10 minutes of event time; 5 % sent twice."""
    ordered = sorted(events, key=lambda e: e["timestamp"])
    moved = rng.sample(range(len(ordered)), len(ordered) // 10)
    keyed = []
    for i, event in enumerate(ordered):
        when = datetime.fromisoformat(event["timestamp"])
        if i in moved:
            when += timedelta(seconds=rng.randrange(-600, 600))
        keyed.append((when, i, event))
    out = [e for _, _, e in sorted(keyed, key=lambda k: (k[0], k[1]))]
    for event in rng.sample(events, len(events) // 20):
        out.insert(rng.randrange(len(out)), event)
    return out


def canonical(event: dict[str, Any]) -> dict[str, Any]:
    origin = Origin(datetime.fromisoformat(event["timestamp"]), event["messageId"])
    return normalize_event(orjson.loads(orjson.dumps(event)), origin)


def visible(doc: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on arrival order (not the version, the history of ids, or the
    windowed counts and RFM, which depend on the moment of the snapshot)."""
    computed = dict(doc["computed"])
    computed["event_counts"] = {n: c["all_time"] for n, c in computed["event_counts"].items()}
    del computed["rfm"]
    out = {k: v for k, v in doc.items() if k not in ("version", "merged_from")}
    out["computed"] = computed
    return out


def latest_profiles(kafka: KafkaConfig, topic: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any] | None] = {}
    for message in read_topic(kafka, topic, expect=1):
        assert message.key is not None
        latest[message.key.decode()] = decode(message.value) if message.value else None
    return {pid: doc for pid, doc in latest.items() if doc is not None}


@contextmanager
def pipeline(kafka: KafkaConfig, topics: Topics, state_dir: Path) -> Iterator[list[Worker]]:
    registry = default_registry()
    context = WorkerContext(
        topics=topics,
        kafka=kafka,
        options=WorkerOptions(consumer_overrides=dict(TEST_CONSUMER), state_dir=state_dir),
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
) -> list[Worker]:
    distinct = len({e["messageId"] for e in events}) - unresolvable
    produce(kafka, topics.raw, [(raw_key(e), orjson.dumps(e)) for e in events])
    with pipeline(kafka, topics, tmp) as workers:
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
    rng = random.Random(11)
    customers = 150
    clean = [e for c in range(customers) for e in journey(c, rng)]
    book = ProfileBook()
    for event in sorted(clean, key=lambda e: e["timestamp"]):
        book.ingest(canonical(event))
    now = max(int(datetime.fromisoformat(e["timestamp"]).timestamp() * 1000) for e in clean)
    expected = {pid: visible(snapshot(pid, s, now)) for pid, s in book.states.items()}
    assert len(expected) == customers

    sent = shuffled_and_duplicated(clean, rng) if perturb else clean
    workers = run(kafka, topics, tmp_path, sent)

    got = {pid: visible(doc) for pid, doc in latest_profiles(kafka, topics.profiles).items()}
    assert sorted(got) == sorted(expected)
    for pid, doc in expected.items():
        assert got[pid] == doc, pid
    total = sum(sum(d["computed"]["event_counts"].values()) for d in got.values())
    assert total == len(clean)  # every event counted exactly once
    identity = workers[1].stats().steps
    assert identity["merges"] >= customers  # at least the anonymous profile of each was merged


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
