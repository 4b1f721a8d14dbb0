"""Replay mode: a historical log fires its triggers at the right stream time, and replaying the
same log again gives the same trigger ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from kafkatest import produce, read_topic, replay_pipeline, wait_for
from wayline.config.workspace import parse_config
from wayline.streams.clients import KafkaConfig

pytestmark = pytest.mark.broker

CONFIG = parse_config(
    """
clock: replay
triggers:
  churn_risk: {factor: 2.0, min_orders: 3, floor: 14d}
  milestones: {orders: [3]}
"""
)
START = datetime(2026, 1, 1, 10, tzinfo=UTC)


def log() -> list[tuple[bytes, bytes]]:
    """A customer ordering every 10 days who stops after day 30, among 60 browsing shoppers
    whose visits carry stream time on to day 80 on every partition. Replay mode fires on stream
    time, so the log is sent in its own order (one key); events from several raw partitions
    would interleave, and a deadline could pass before a late event arrives."""
    events: list[dict[str, Any]] = []
    for i in range(4):
        events.append({"type": "track", "userId": "churner", "event": "Order Completed",
                       "messageId": f"order-{i}", "timestamp": START + timedelta(days=10 * i),
                       "properties": {"order_id": f"o{i}", "revenue": 25.0}})  # fmt: skip
    for c in range(60):
        for day in range(0, 81, 5):
            events.append({"type": "page", "userId": f"browser-{c}", "name": "Home",
                           "messageId": f"view-{c}-{day}",
                           "timestamp": START + timedelta(days=day, minutes=c)})  # fmt: skip
    events.sort(key=lambda e: e["timestamp"])
    out = []
    for event in events:
        event["timestamp"] = event["timestamp"].isoformat()
        event["receivedAt"] = event["timestamp"]  # a historical log: received when it happened
        out.append((b"history", orjson.dumps(event)))  # one key: the log's order is kept
    return out


def run_once(kafka: KafkaConfig, state_dir: Path) -> list[dict[str, Any]]:
    events = log()
    with replay_pipeline(kafka, CONFIG, 3, state_dir) as (topics, workers):
        produce(kafka, topics.raw, events)
        profile = workers[2]
        wait_for(lambda: profile.stats().steps.get("events_applied", 0) >= len(events), 90,
                 "every event in a profile")  # fmt: skip
        wait_for(lambda: profile.stats().steps.get("triggers_fired", 0) >= 2, 30, "the triggers")
        found = read_topic(kafka, topics.triggers, expect=2, settle_s=1)
    return [orjson.loads(m.value or b"") for m in found]


def test_churn_fires_at_the_right_stream_time_and_a_replay_gives_the_same_ids(
    kafka: KafkaConfig, tmp_path: Path
) -> None:
    first = run_once(kafka, tmp_path / "a")
    churn = [t for t in first if t["type"] == "wayline.trigger.churn_risk"]
    assert len(churn) == 1
    (only,) = churn
    assert only["data"]["identifiers"]["user_id"] == ["churner"]
    assert only["time"] == (START + timedelta(days=50)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert only["data"]["reason"]["expected_gap_days"] == 20.0
    assert only["data"]["payload"]["ltv"] == 100.0
    milestones = [t["data"]["occasion"] for t in first if t["type"] == "wayline.trigger.milestone"]
    assert milestones == ["orders:3"]

    second = run_once(kafka, tmp_path / "b")
    assert sorted(t["id"] for t in second) == sorted(t["id"] for t in first)
