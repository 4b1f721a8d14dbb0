"""Helpers for delivery tests: profiles and triggers as the profile worker writes them, and the
deliveries topic read back by delivery id."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from kafkatest import TEST_CONSUMER, produce, read_topic, running
from wayline.connectors.retries import RetrySchedule
from wayline.profiles.state import apply_event, empty_state
from wayline.profiles.view import snapshot
from wayline.schemas.topics import Topics
from wayline.segments.policy import ContactPolicy
from wayline.segments.triggers import Fired, cloud_event
from wayline.streams.clients import KafkaConfig
from wayline.streams.registry import WorkerContext, default_registry
from wayline.streams.routes import DeliverySetup, Route
from wayline.streams.worker import Worker, WorkerOptions

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST_RETRIES = RetrySchedule().scaled(0.0001)  # 5 s … 10 h become 0.5 ms … 3.6 s


def profile_doc(pid: str, at: datetime, **traits: Any) -> dict[str, Any]:
    """The snapshot the profile worker would write for a profile identified by these traits
    (``email``, ``phone``, ``timezone``, ``consent``…), as of ``at``."""
    state = empty_state()
    linked: list[tuple[str, str]] = [(k, str(traits[k])) for k in ("email", "phone") if k in traits]
    linked.append(("user_id", pid))
    event = {"type": "identify", "messageId": f"{pid}-{at.timestamp()}", "traits": traits,
             "timestamp": at.isoformat(), "context": {"channel": "web"}}  # fmt: skip
    apply_event(state, event, linked)
    return snapshot(pid, state, int(at.timestamp() * 1000), version=1)


def trigger_doc(doc: dict[str, Any], occasion: str, kind: str = "cart_abandoned") -> dict[str, Any]:
    """A trigger fired for ``doc``'s profile, carrying its contact points as it fired."""
    at = int(time.time() * 1000)
    payload = {"cart_id": occasion, "value": 42.0, "items": []}
    fired = Fired(kind, occasion, at, {"after_minutes": 60}, payload)
    return cloud_event(fired, 1, doc["profile_id"], doc["identifiers"], doc["contact"])


def publish(kafka: KafkaConfig, topic: str, docs: list[dict[str, Any]], key: str) -> None:
    produce(kafka, topic, [(str(d[key]).encode(), orjson.dumps(d)) for d in docs])


def deliver_worker(
    kafka: KafkaConfig,
    topics: Topics,
    state_dir: Path,
    routes: tuple[Route, ...],
    policy: ContactPolicy | None = None,
    retries: RetrySchedule = FAST_RETRIES,
    clock_offset_s: float = 0.0,
) -> Worker:
    context = WorkerContext(
        topics=topics,
        kafka=kafka,
        delivery=DeliverySetup(routes, policy or ContactPolicy(), retries),
        options=WorkerOptions(consumer_overrides=dict(TEST_CONSUMER), state_dir=state_dir),
    )
    worker = default_registry()["deliver"].create(context)
    if clock_offset_s:
        worker.wall_clock = lambda: time.time() + clock_offset_s
    return worker


@contextmanager
def delivering(*args: Any, **kwargs: Any) -> Iterator[Worker]:
    with running(deliver_worker(*args, **kwargs)) as worker:
        yield worker


class Deliveries:
    """``wayline.deliveries`` by delivery id, in the order each delivery's records came."""

    def __init__(self, kafka: KafkaConfig, topics: Topics) -> None:
        self.kafka, self.topics = kafka, topics

    def read(self, finals: int, timeout_s: float = 60.0) -> dict[str, list[dict[str, Any]]]:
        """Read until ``finals`` deliveries have a final record."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.by_id()
            done = sum(1 for records in found.values() if any(r["final"] for r in records))
            if done >= finals or time.monotonic() > deadline:
                assert done >= finals, (
                    f"{done} deliveries final after {timeout_s}s, {finals} expected"
                )
                return found
            time.sleep(0.3)

    def by_id(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in read_topic(self.kafka, self.topics.deliveries, 0, timeout_s=10):
            record = orjson.loads(message.value or b"{}")
            out[record["delivery_id"]].append(record)
        return dict(out)


def final_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The one final outcome of a delivery (identical re-published copies count once)."""
    finals = {orjson.dumps(r, option=orjson.OPT_SORT_KEYS): r for r in records if r["final"]}
    assert len(finals) == 1, f"{len(finals)} different final outcomes: {list(finals.values())}"
    return next(iter(finals.values()))


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)
