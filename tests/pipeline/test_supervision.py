"""Worker threads are supervised: a worker that crashes outside any record (nothing to
dead-letter) is started again from its committed state with a growing pause; one that keeps
crashing stops Wayline after the fifth crash in five minutes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kafkatest import wait_for
from wayline.config.workspace import WaylineConfig
from wayline.platform import Platform
from wayline.schemas.topics import Topics
from wayline.settings import load_settings
from wayline.streams.clients import KafkaConfig
from wayline.streams.envelope import Envelope, Output
from wayline.streams.registry import WorkerSpec, default_registry
from wayline.streams.task import TaskContext

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


class Flaky:
    """A step whose refresh raises the first ``crashes`` times (of every instance)."""

    calls = 0
    crashes = 0

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]:
        return []

    def refresh(self, ctx: TaskContext) -> list[Output]:
        Flaky.calls += 1
        if Flaky.calls <= Flaky.crashes:
            raise RuntimeError(f"crash {Flaky.calls}")
        return []


def platform(kafka: KafkaConfig, topics: Topics, tmp: Path) -> Platform:
    spec = WorkerSpec("flaky", "a test worker", lambda t: [t.raw], lambda _c: Flaky())
    settings = load_settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=topics.prefix,
        partitions=topics.partitions,
        data_dir=tmp,
        kafka_options={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )
    registry = {**default_registry(), "flaky": spec}
    return Platform(settings, WaylineConfig(), workers=["flaky"], api=False, registry=registry)


def test_a_crashed_worker_is_started_again(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    Flaky.calls, Flaky.crashes = 0, 3
    running = platform(kafka, topics, tmp_path)
    running.start()
    try:
        wait_for(lambda: Flaky.calls > 10, 60, "the worker to run again")
        (worker,) = running.running
        assert len(worker.restarts) == 3
        assert not running.failed.is_set()
    finally:
        running.stop()


def test_a_worker_that_keeps_crashing_stops_wayline(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    Flaky.calls, Flaky.crashes = 0, 10**9
    running = platform(kafka, topics, tmp_path)
    started = time.monotonic()
    running.start()
    try:
        wait_for(running.failed.is_set, 60, "Wayline to give up")
        (worker,) = running.running
        assert isinstance(worker.error, RuntimeError)
        assert Flaky.calls == 5
        print(f"gave up after {time.monotonic() - started:.1f} s")
    finally:
        running.stop()
