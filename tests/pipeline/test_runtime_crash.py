"""The runtime under SIGKILL and rebalances: state equals the oracle exactly, every output is
there, and a replayed output repeats with the same id and the same value."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from foldworker import NAME, STORES, fold_topics, fold_worker
from kafkatest import committed, produce, read_topic, running, wait_for
from wayline.schemas.topics import Topics
from wayline.streams.admin import delete_topics, ensure_topics
from wayline.streams.changelog import fold_changelog
from wayline.streams.clients import KafkaConfig
from wayline.streams.restore import read_partition
from wayline.streams.store import RocksStore

pytestmark = pytest.mark.broker

FOLDWORKER = str(Path(__file__).resolve().parents[1] / "foldworker.py")


@pytest.fixture
def fold_topics_created(kafka: KafkaConfig) -> Iterator[Topics]:
    topics = fold_topics(f"t{uuid.uuid4().hex[:10]}")
    specs = topics.specs({NAME: STORES})
    ensure_topics(kafka, specs)
    yield topics
    delete_topics(kafka, [s.name for s in specs])


@dataclass
class Oracle:
    running: dict[str, int] = field(default_factory=dict)  # event id -> total it must produce
    sums: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # final state


def make_events(count: int, keys: int, seed: int) -> tuple[list[tuple[bytes, bytes]], Oracle]:
    rng = random.Random(seed)
    events, oracle = [], Oracle()
    for i in range(count):
        key = f"k{rng.randrange(keys)}"
        amount = rng.randint(1, 100)
        oracle.sums[key] += amount
        oracle.running[f"e{i}"] = oracle.sums[key]
        events.append((key.encode(), orjson.dumps({"id": f"e{i}", "amount": amount})))
    oracle.sums = dict(oracle.sums)
    return events, oracle


def check_outputs(kafka: KafkaConfig, topics: Topics, oracle: Oracle) -> int:
    expected = oracle.running
    outputs = read_topic(kafka, topics.triggers, expect=len(expected), timeout_s=120)
    seen: dict[str, int] = {}
    for message in outputs:
        out = orjson.loads(message.value or b"")
        assert seen.setdefault(out["id"], out["total"]) == out["total"], "a replay changed a value"
    assert seen == expected
    return len(outputs) - len(expected)


def changelog_state(kafka: KafkaConfig, topics: Topics) -> dict[str, int]:
    state: dict[str, int] = {}
    for partition in range(topics.partitions):
        primary, _ = read_partition(kafka, topics.changelog(NAME, "sums"), partition, 0)
        for key, value in fold_changelog(primary).values.items():
            if value is not None:
                state[key.decode()] = int(value)
    return state


def local_state(state_dir: Path, partitions: int) -> dict[str, int]:
    state: dict[str, int] = {}
    for partition in range(partitions):
        path = state_dir / NAME / "sums" / str(partition)
        if path.exists():
            store = RocksStore(path)
            state.update({k.decode(): int(v) for k, v in store.items()})
            store.close()
    return state


def progress(kafka: KafkaConfig, group: str, topic: str) -> int:
    return sum(max(0, offset) for offset in committed(kafka, group, topic).values())


def start(kafka: KafkaConfig, topics: Topics, state_dir: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, FOLDWORKER, kafka.bootstrap, topics.prefix, str(state_dir)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.soak
def test_sigkill_three_times_loses_and_doubles_nothing(
    kafka: KafkaConfig, fold_topics_created: Topics, tmp_path: Path
) -> None:
    topics = fold_topics_created
    total = 100_000
    events, oracle = make_events(total, keys=2_000, seed=42)
    produce(kafka, topics.raw, events)
    group = f"{topics.prefix}.{NAME}"
    state_dir = tmp_path / "state"
    rng = random.Random(7)
    kills = 0
    for fraction in (0.15, 0.45, 0.75):
        process = start(kafka, topics, state_dir)
        try:
            target = fraction * total

            def reached(target: float = target) -> bool:
                return progress(kafka, group, topics.raw) >= target

            wait_for(reached, timeout_s=120, what=f"{fraction:.0%} progress")
            time.sleep(rng.uniform(0, 0.3))  # land anywhere inside a batch
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            kills += 1
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    process = start(kafka, topics, state_dir)
    try:
        wait_for(lambda: progress(kafka, group, topics.raw) == total, 180, "the last event")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert kills == 3
    assert local_state(state_dir, topics.partitions) == oracle.sums
    assert changelog_state(kafka, topics) == oracle.sums
    check_outputs(kafka, topics, oracle)


def test_rebalance_second_worker_joins_then_first_leaves(
    kafka: KafkaConfig, fold_topics_created: Topics, tmp_path: Path
) -> None:
    topics = fold_topics_created
    total = 20_000
    events, oracle = make_events(total, keys=500, seed=9)
    group = f"{topics.prefix}.{NAME}"
    first = fold_worker(kafka, topics.prefix, tmp_path / "a", batch_size=100)
    second = fold_worker(kafka, topics.prefix, tmp_path / "b", batch_size=100)
    with running(first):
        produce(kafka, topics.raw, events[: total // 2])
        wait_for(lambda: progress(kafka, group, topics.raw) > total // 8, 60, "first progress")
        with running(second):
            produce(kafka, topics.raw, events[total // 2 :])
            wait_for(lambda: bool(second.stats().assigned), 60, "the second worker's partitions")
            first.stop()
            wait_for(lambda: progress(kafka, group, topics.raw) == total, 120, "the last event")
            wait_for(lambda: len(second.stats().assigned) == topics.partitions, 60, "takeover")
    assert first.stats().events_in > 0
    assert second.stats().events_in > 0
    assert first.stats().events_in + second.stats().events_in >= total
    assert changelog_state(kafka, topics) == oracle.sums
    assert local_state(tmp_path / "b", topics.partitions) == oracle.sums
    check_outputs(kafka, topics, oracle)
