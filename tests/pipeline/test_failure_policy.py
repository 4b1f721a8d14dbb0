"""The failure policy of the runtime: a record a step cannot process — wherever it fails in the
step (while applied, or when its batch is written) — is dead-lettered with ``processing_error``
and its partition moves on, good records around it are processed as if it were not there, and
a failure of every record stops the worker with one line after the limit."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from kafkatest import TEST_CONSUMER, produce, read_topic, running, wait_for
from wayline.schemas.errors import SystemicFailure
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.failure import FailureLimits
from wayline.streams.registry import WorkerContext, default_registry
from wayline.streams.worker import Worker, WorkerOptions

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]


def workers(
    kafka: KafkaConfig, topics: Topics, tmp: Path, limits: FailureLimits | None = None
) -> list[Worker]:
    options = WorkerOptions(
        consumer_overrides=dict(TEST_CONSUMER),
        state_dir=tmp,
        failure_limits=limits or FailureLimits(),
    )
    context = WorkerContext(topics=topics, kafka=kafka, options=options)
    registry = default_registry()
    return [registry[n].create(context) for n in ("validate", "identity", "profile")]


@contextmanager
def pipeline(kafka: KafkaConfig, topics: Topics, tmp: Path) -> Iterator[list[Worker]]:
    chain = workers(kafka, topics, tmp)
    with ExitStack() as stack:
        for worker in chain:
            stack.enter_context(running(worker))
        yield chain


def order(n: int, user: str, amount: float) -> dict[str, Any]:
    return {
        "type": "track", "event": "Order Completed", "userId": user, "messageId": f"{user}-o{n}",
        "timestamp": f"2026-03-0{n}T10:00:00Z", "properties": {"order_id": f"{user}-{n}",
                                                           "revenue": amount},
    }  # fmt: skip


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        value = {"x": value}
    return value


def dead_letters(kafka: KafkaConfig, topics: Topics, expect: int) -> list[dict[str, Any]]:
    found = read_topic(kafka, topics.dlq, expect=expect)
    return [
        {"worker": m.header("wayline.dlq.worker"), "reason": m.header("wayline.dlq.reason"),
         "detail": (m.header("wayline.dlq.detail") or b"").decode(), "value": m.value,
         "topic": m.header("wayline.dlq.topic")}
        for m in found
    ]  # fmt: skip


def orders_of(kafka: KafkaConfig, topics: Topics) -> dict[str, int]:
    latest: dict[str, dict[str, Any]] = {}
    for message in read_topic(kafka, topics.profiles, expect=1):
        if message.value:
            doc = orjson.loads(message.value)
            for user in doc["identifiers"].get("user_id", []):
                latest[user] = doc
    return {u: d["computed"]["order_count"] for u, d in latest.items()}


def test_poison_records_are_dead_lettered_and_every_good_record_around_them_counts(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    good = [order(n, f"u{u}", 10.0 * n) for u in range(4) for n in (1, 2)]
    with pipeline(kafka, topics, tmp_path) as (_validate, identity, profile):
        produce(kafka, topics.raw, [(e["userId"].encode(), orjson.dumps(e)) for e in good])
        wait_for(lambda: orders_of(kafka, topics) == {f"u{u}": 2 for u in range(4)}, 60, "orders")
        resolved = [
            m for m in read_topic(kafka, topics.resolved, expect=8)
            if m.header("wayline.kind") == b"event"
        ]  # fmt: skip
        template = orjson.loads(resolved[0].value or b"")
        deep = {**template, "type": "identify", "messageId": "deep-1", "traits": nested(300)}
        no_time = {**template, "messageId": "no-time-1"}
        del no_time["timestamp"]
        poison_profile = [
            (resolved[0].key, json.dumps(deep).encode()),  # fails when its batch is written
            (resolved[0].key, orjson.dumps(no_time)),  # fails while applied
        ]
        # an identity worker's input written by something else than the validate worker
        produce(kafka, topics.events, [(b"x", orjson.dumps({"type": "track", "event": "X"}))])
        produce(kafka, topics.resolved, poison_profile)
        later = [order(3, f"u{u}", 5.0) for u in range(4)]
        produce(kafka, topics.raw, [(e["userId"].encode(), orjson.dumps(e)) for e in later])

        wait_for(lambda: orders_of(kafka, topics) == {f"u{u}": 3 for u in range(4)}, 60, "more")
        letters = dead_letters(kafka, topics, expect=3)
        assert identity.stats().dead_lettered == 1
        assert profile.stats().dead_lettered == 2
    by_worker = sorted((d["worker"], d["reason"]) for d in letters)
    assert by_worker == [
        (b"identity", b"processing_error"),
        (b"profile", b"processing_error"),
        (b"profile", b"processing_error"),
    ]
    details = " | ".join(d["detail"] for d in letters)
    assert "KeyError" in details
    assert "ProfileStep" in details
    assert "IdentityStep" in details
    assert {d["value"] for d in letters if d["worker"] == b"profile"} == {
        v for _, v in poison_profile
    }, "the original bytes are kept"


def test_a_step_that_fails_every_record_stops_its_worker_after_the_limit(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    profile = workers(kafka, topics, tmp_path, FailureLimits(consecutive=5))[2]
    junk = [(f"p{i}".encode(), orjson.dumps({"type": "track", "n": i})) for i in range(20)]
    produce(kafka, topics.resolved, junk)
    with pytest.raises(SystemicFailure, match="5 records in a row failed"), running(profile):
        wait_for(lambda: profile.failures.failures >= 5, 60, "the limit")
    # four dead letters; the fifth record was not taken: a worker started again (say, with the
    # cause fixed — here with the default limit) goes on from it, and nothing is taken twice
    assert len(read_topic(kafka, topics.dlq, expect=4, settle_s=1)) == 4
    again = workers(kafka, topics, tmp_path)[2]
    with running(again):
        wait_for(lambda: again.stats().dead_lettered >= 16, 60, "the rest")
    letters = read_topic(kafka, topics.dlq, expect=20, settle_s=1)
    where = Counter(
        (m.header("wayline.dlq.partition"), m.header("wayline.dlq.offset")) for m in letters
    )
    assert len(where) == 20, "every junk record dead-lettered"
    assert set(where.values()) == {1}, "and none twice"
