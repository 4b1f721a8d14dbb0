"""The traffic simulator: deterministic per seed, valid except for the events it breaks."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from wayline.connectors.simulator import Simulator
from wayline.schemas.errors import InvalidEvent
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.timestamps import parse_timestamp

START = datetime(2026, 11, 23, 9, tzinfo=UTC)


def run(seed: int, seconds: int = 120) -> tuple[Simulator, list[tuple[str, dict[str, Any]]]]:
    simulator = Simulator(seed=seed, shoppers=300, sessions_per_s=20)
    events = []
    for step in range(seconds * 4):
        events += simulator.due(START + timedelta(milliseconds=250 * step))
    return simulator, events


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    _, first = run(seed=11)
    _, again = run(seed=11)
    _, other = run(seed=12)
    assert first == again
    assert first != other


def test_only_the_deliberately_broken_events_are_rejected() -> None:
    simulator, events = run(seed=3, seconds=300)
    rejected = 0
    kinds: Counter[str] = Counter()
    for source, event in events:
        sent = parse_timestamp(event["sentAt"])
        assert sent is not None
        origin = Origin(sent + timedelta(milliseconds=40), "unused", source=source)
        try:
            canonical = normalize_event(event, origin)
        except InvalidEvent:
            rejected += 1
            continue
        kinds[canonical["type"]] += 1
        assert canonical["context"]["channel"] in {"web", "app", "email", "store"}
    assert simulator.produced == len(events) > 10_000
    assert simulator.broken > 0
    assert rejected == simulator.broken
    assert {"track", "identify", "page", "screen"} <= set(kinds)


def test_every_channel_and_the_commerce_events_appear() -> None:
    _, events = run(seed=5, seconds=300)
    channels = Counter(e.get("context", {}).get("channel") for _, e in events)
    names = Counter(e.get("event") for _, e in events)
    assert {"web", "app", "email", "store"} <= set(channels)
    for name in ("Product Viewed", "Product Added", "Order Completed", "Email Opened"):
        assert names[name] > 0, name
