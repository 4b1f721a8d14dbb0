"""Helpers for tests that talk to the broker: produce, read a topic to its end, run a worker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson
import tenacity
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from wayline.config.workspace import WaylineConfig
from wayline.schemas.topics import Topics
from wayline.streams.admin import delete_topics, ensure_topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.envelope import Envelope, Headers
from wayline.streams.registry import WorkerContext, default_registry, store_topics
from wayline.streams.worker import Worker, WorkerOptions

# Consumer-group joins take about half of session.timeout.ms on the embedded broker.
TEST_CONSUMER: dict[str, object] = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def produce(
    kafka: KafkaConfig,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes]],
    headers: Headers = (),
) -> None:
    """Produce ``(key, value)`` pairs and wait until the broker acknowledged every one."""
    producer = kafka.producer()
    failed: list[KafkaError] = []
    for key, value in messages:
        producer.produce(
            topic,
            value,
            key,
            headers=list(headers),
            on_delivery=lambda err, _m: failed.append(err) if err else None,
        )
    assert producer.flush(30) == 0
    assert failed == []


def read_topic(
    kafka: KafkaConfig, topic: str, expect: int, timeout_s: float = 30.0, settle_s: float = 0.0
) -> list[Envelope]:
    """Every message of ``topic`` from the beginning: at least ``expect`` of them, read until
    every partition reports its end. ``settle_s`` keeps reading that long after, to catch
    messages that should not be there."""
    consumer = kafka.consumer(f"reader-{uuid.uuid4().hex}", **{"enable.partition.eof": True})
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = sorted(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    out: list[Envelope] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    settled: float | None = None
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, 0.1):
                error = message.error()
                if error is None:
                    out.append(Envelope.from_message(message))
                    at_end.discard(message.partition())
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
            if len(out) >= expect and at_end == set(partitions):
                settled = settled or time.monotonic()
                if time.monotonic() - settled >= settle_s:
                    break
    finally:
        consumer.close()
    assert len(out) >= expect, f"{topic}: {len(out)} messages after {timeout_s}s, {expect} expected"
    return out


def read_transitions(
    kafka: KafkaConfig, topic: str, expect: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Every transition on the segments ``topic`` (its records carry a profile's transitions of
    a batch), in log order: at least ``expect`` of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            transition
            for message in read_topic(kafka, topic, expect=0)
            for transition in orjson.loads(message.value or b"{}").get("transitions") or ()
        ]
        if len(found) >= expect or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(found) >= expect, f"{topic}: {len(found)} transitions, {expect} expected"
    return found


def read_events(
    kafka: KafkaConfig, topics: Topics, expect: int, timeout_s: float = 30.0, settle_s: float = 0.0
) -> list[dict[str, Any]]:
    """The events the pipeline counts, once each: those the identity worker passed on to
    ``wayline.events.resolved`` (duplicates dropped), in the order of each partition."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = read_topic(kafka, topics.resolved, 0, timeout_s, settle_s)
        events = [
            orjson.loads(m.value or b"") for m in found if m.header("wayline.kind") == b"event"
        ]
        if len(events) >= expect or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(events) >= expect, f"{len(events)} events after {timeout_s}s, {expect} expected"
    return events


COORDINATOR_MOVING = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
}


def _retriable(exc: BaseException) -> bool:
    if not isinstance(exc, KafkaException):
        return False
    error: KafkaError = exc.args[0]
    return error.retriable() or error.code() in COORDINATOR_MOVING


@tenacity.retry(  # a coordinator moving or still loading answers NOT_COORDINATOR for a while
    retry=tenacity.retry_if_exception(_retriable),
    wait=tenacity.wait_exponential(multiplier=0.2, max=2),
    stop=tenacity.stop_after_delay(30),
    reraise=True,
)
def committed(kafka: KafkaConfig, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition (-1001 = nothing committed)."""
    consumer = kafka.consumer(group)
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    """Run a worker in a thread for the duration of the block; re-raise what it raised."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"test-{worker.name}", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive(), f"worker {worker.name} did not stop"
    if errors:
        raise errors[0]


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@contextmanager
def replay_pipeline(
    kafka: KafkaConfig, config: WaylineConfig, partitions: int, state_dir: Path
) -> Iterator[tuple[Topics, list[Worker]]]:
    """validate → identity → profile in replay mode with ``config``'s definitions, on topics of
    their own (deleted afterwards)."""
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}", partitions=partitions)
    registry = default_registry()
    specs = topics.specs(store_topics(registry))
    ensure_topics(kafka, specs)
    options = WorkerOptions(
        consumer_overrides=dict(TEST_CONSUMER), state_dir=state_dir, clock="replay"
    )
    context = WorkerContext(
        topics=topics,
        kafka=kafka,
        options=options,
        segments=config.compiled_segments(),
        triggers=config.triggers.config(),
        reorder_window_ms=config.reorder.window_ms(),
        reorder_idle_ms=config.reorder.idle_ms(),
    )
    workers = [registry[n].create(context) for n in ("validate", "identity", "profile")]
    try:
        with ExitStack() as stack:
            for worker in workers:
                stack.enter_context(running(worker))
            yield topics, workers
    finally:
        delete_topics(kafka, [s.name for s in specs])
