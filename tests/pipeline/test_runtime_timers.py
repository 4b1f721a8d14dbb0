"""Timers on the real broker: on time when live, once each across SIGKILL, the same on replay."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from foldworker import NAME, STORES, fold_topics, fold_worker
from kafkatest import committed, read_topic, running, wait_for
from wayline.schemas.topics import Topics
from wayline.streams.admin import delete_topics, ensure_topics
from wayline.streams.clients import KafkaConfig

pytestmark = pytest.mark.broker

FOLDWORKER = str(Path(__file__).resolve().parents[1] / "foldworker.py")
KEYS = 1_000


@pytest.fixture
def topics(kafka: KafkaConfig) -> Iterator[Topics]:
    made = fold_topics(f"t{uuid.uuid4().hex[:10]}")
    specs = made.specs({NAME: STORES, f"{NAME}-replay": STORES})
    ensure_topics(kafka, specs)
    yield made
    delete_topics(kafka, [s.name for s in specs])


def now_ms() -> int:
    return int(time.time() * 1000)


def schedule(
    kafka: KafkaConfig, topic: str, dues: dict[str, int], event_time_ms: int | None = None
) -> None:
    producer = kafka.producer()
    for key, due in dues.items():
        value = orjson.dumps({"id": f"s-{key}", "schedule": due, "tag": "cart"})
        producer.produce(topic, value, key.encode(), timestamp=event_time_ms or 0)
    assert producer.flush(30) == 0


def fired(kafka: KafkaConfig, topics: Topics, expect: int) -> list[dict[str, Any]]:
    messages = read_topic(kafka, topics.triggers, expect=expect, timeout_s=90, settle_s=0.5)
    return [orjson.loads(m.value or b"") for m in messages]


def assert_due_order_per_partition(outputs: list[dict[str, Any]]) -> None:
    by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for out in outputs:
        by_partition[out["partition"]].append(out)
    for outs in by_partition.values():
        by_due = sorted(outs, key=lambda o: (o["due_ms"], o["key"]))
        fire_times = [o["fired_at_ms"] for o in by_due]
        assert fire_times == sorted(fire_times), "timers of a partition fired out of due order"


def test_live_timers_fire_within_a_second_of_due(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    worker = fold_worker(kafka, topics.prefix, tmp_path / "state")
    with running(worker):
        wait_for(lambda: len(worker.stats().assigned) == topics.partitions, 60, "assignment")
        base = now_ms() + 1_500
        dues = {f"cart-{i}": base + i * 3 for i in range(KEYS)}  # 1,000 timers over 3 s
        schedule(kafka, topics.raw, dues)
        outputs = fired(kafka, topics, KEYS)
        stats = worker.stats()
    assert sorted(o["key"] for o in outputs) == sorted(dues)
    lateness = sorted(o["fired_at_ms"] - o["due_ms"] for o in outputs)
    assert lateness[0] >= 0, "a timer fired before its due time"
    assert lateness[-1] <= 1_000, f"latest timer fired {lateness[-1]} ms after due"
    assert_due_order_per_partition(outputs)
    assert stats.timers_fired == KEYS


def test_timers_fire_once_each_across_sigkill(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    command = [sys.executable, FOLDWORKER, kafka.bootstrap, topics.prefix, str(tmp_path / "s")]
    group = f"{topics.prefix}.{NAME}"
    base = now_ms() + 4_000
    dues = {f"cart-{i}": base + i * 4 for i in range(KEYS)}  # 1,000 timers over 4 s
    schedule(kafka, topics.raw, dues)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: sum(committed(kafka, group, topics.raw).values()) == KEYS, 60, "schedules")
        time.sleep(max(0.0, (base + 2_000 - now_ms()) / 1000))  # about half have fired
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        outputs = fired(kafka, topics, KEYS)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    first: dict[str, dict[str, Any]] = {}
    for out in outputs:
        first.setdefault(out["id"], out)
        assert out["due_ms"] == first[out["id"]]["due_ms"]
    assert sorted(first) == sorted(f"timer:{k}:{d}:cart" for k, d in dues.items())
    assert all(o["fired_at_ms"] >= o["due_ms"] for o in outputs)
    assert_due_order_per_partition(list(first.values()))
    assert len(outputs) - len(first) < KEYS // 2, "far more repeats than one batch can cause"


def test_replay_fires_the_same_timers_as_live(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    """A log that ends a minute ago: timers due inside it fire live and on replay alike; timers
    due after its end fire live on the wall clock only — replay knows nothing but event time."""
    start = now_ms() - 120_000
    end = start + 60_000
    dues = {f"cart-{i}": start + 1_000 + i * 57 for i in range(KEYS)}  # all before the end
    gap = {f"gap-{i}": end + 30_000 + i for i in range(10)}  # after the end, before now
    later = {f"later-{i}": now_ms() + 3_600_000 + i for i in range(20)}  # in an hour
    schedule(kafka, topics.raw, dues | gap | later, event_time_ms=start)
    producer = kafka.producer()
    for partition in range(topics.partitions):  # the log's last event on every partition
        producer.produce(topics.raw, b'{"id": "end"}', b"end", partition=partition, timestamp=end)
    assert producer.flush(10) == 0

    live = fold_worker(kafka, topics.prefix, tmp_path / "live")
    with running(live):
        wait_for(lambda: live.stats().timers_fired == KEYS + len(gap), 60, "live timers")
        time.sleep(0.5)
        live_stats = live.stats()
    replay = fold_worker(kafka, topics.prefix, tmp_path / "replay", "replay", "-replay")
    with running(replay):
        wait_for(lambda: replay.stats().timers_fired >= KEYS, 60, "replayed timers")
        time.sleep(0.5)
        replay_stats = replay.stats()
    outputs = fired(kafka, topics, 2 * KEYS + len(gap))
    ids = {clock: [o["id"] for o in outputs if o["clock"] == clock] for clock in ("live", "replay")}
    in_log = {f"timer:{k}:{d}:cart" for k, d in dues.items()}
    assert sorted(ids["replay"]) == sorted(in_log)
    assert sorted(ids["live"]) == sorted(in_log | {f"timer:{k}:{d}:cart" for k, d in gap.items()})
    assert replay_stats.timers_fired == KEYS
    assert replay_stats.timers_pending == len(gap) + len(later)
    assert live_stats.timers_pending == len(later)
