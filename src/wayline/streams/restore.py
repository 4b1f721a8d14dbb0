"""Rebuild a task's stores on assignment: local RocksDB checkpoint + changelog tail, or the whole
changelog when the local copy is missing or does not match the cluster."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, TopicPartition

from wayline.schemas.errors import RetryableError
from wayline.streams.changelog import (
    MARKER_KEY,
    Marker,
    Restored,
    fold_changelog,
    group_members,
)
from wayline.streams.clients import KafkaConfig
from wayline.streams.store import RocksStore, StateStore
from wayline.streams.task import (
    META_COMMIT,
    ClockMode,
    StoreView,
    Task,
    checkpoint_meta,
    local_checkpoint,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskLayout:
    """Where a worker's stores live: their changelog topics and local directory."""

    worker: str
    changelogs: dict[str, str]  # store name -> changelog topic; the first is the primary
    state_dir: Path
    clock: ClockMode = "live"
    grace_ms: int = 0

    def store_path(self, store: str, partition: int) -> Path:
        return self.state_dir / self.worker / store / str(partition)


@dataclass
class RestoreReport:
    partition: int
    records: int
    seconds: float
    from_scratch: list[str]
    compensated: int


def read_partition(
    kafka: KafkaConfig,
    topic: str,
    partition: int,
    start: int,
    timeout_s: float = 120.0,
    silent_s: float = 3.0,
) -> tuple[list[tuple[bytes, bytes | None]], int]:
    """Every ``(key, value)`` of one partition from ``start`` to its end, and the end offset
    (``read_partitions`` of one topic)."""
    return read_partitions(kafka, {topic: start}, partition, timeout_s, silent_s)[topic]


def read_partitions(
    kafka: KafkaConfig,
    starts: dict[str, int],
    partition: int,
    timeout_s: float = 120.0,
    silent_s: float = 3.0,
) -> dict[str, tuple[list[tuple[bytes, bytes | None]], int]]:
    """Partition ``partition`` of each topic of ``starts``, from its start to its end, through
    one consumer (a task's changelogs are restored together: a consumer costs more to start
    than an empty changelog to read).

    The end is where the broker reports partition EOF, not the high watermark (which some
    Kafka-protocol brokers under-report). A start past the end (a local checkpoint of a
    changelog the cluster no longer has) gives nothing, at once, and an end no later than the
    start: Kafka answers such a fetch with an out-of-range error, the embedded broker with
    silence, so after ``silent_s`` without a word the end is looked up (the real one, below
    the start)."""
    name = "+".join(sorted(starts)) if len(starts) > 1 else next(iter(starts))
    consumer = kafka.consumer(
        f"{name}.restore", **{"enable.partition.eof": True, "fetch.wait.max.ms": 10}
    )
    consumer.assign([TopicPartition(topic, partition, at) for topic, at in starts.items()])
    out: dict[str, list[tuple[bytes, bytes | None]]] = {topic: [] for topic in starts}
    ends = dict(starts)
    done: dict[str, tuple[list[tuple[bytes, bytes | None]], int]] = {}
    patient: set[str] = set()  # silent past the start, but there is more: wait for it
    started = time.monotonic()
    deadline = started + timeout_s
    try:
        while time.monotonic() < deadline and len(done) < len(starts):
            if time.monotonic() - started > silent_s:
                for topic, at in starts.items():
                    if topic in done or topic in patient or at == 0 or out[topic]:
                        continue
                    real_end = _end_offset(kafka, topic, partition)
                    if real_end <= at:
                        done[topic] = ([], real_end)
                    patient.add(topic)
            for message in consumer.consume(10_000, 0.2):
                topic = message.topic() or ""
                error = message.error()
                if topic in done:
                    continue
                if error is None:
                    out[topic].append((message.key() or b"", message.value()))
                    ends[topic] = (message.offset() or 0) + 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    done[topic] = (out[topic], max(ends[topic], message.offset() or 0))
                else:
                    log.warning("restore of %s[%d]: %s", topic, partition, error)
    finally:
        consumer.close()
    if len(done) < len(starts):
        missing = ", ".join(f"{t}[{partition}]" for t in starts if t not in done)
        raise RetryableError(f"restore of {missing} did not reach the end in {timeout_s}s")
    return done


def _end_offset(kafka: KafkaConfig, topic: str, partition: int) -> int:
    """The real end of a partition: read from the broker's high watermark minus one (the last
    record batch on brokers that under-report the watermark) to partition EOF."""
    consumer = kafka.consumer(f"{topic}.restore", **{"enable.partition.eof": True})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()
    if high <= low:
        return high
    return read_partition(kafka, topic, partition, max(low, high - 1), silent_s=3600)[1]


def restore_task(
    kafka: KafkaConfig, layout: TaskLayout, partition: int
) -> tuple[Task, RestoreReport]:
    """Open and restore every store of ``partition``; the task is ready to process after the
    compensations it carries (if any) are committed."""
    started = time.monotonic()
    opened = {name: _open(layout, name, partition) for name in layout.changelogs}
    primary = next(iter(layout.changelogs), None)
    starts = {  # the primary from its checkpoint's last record: the marker it must continue
        layout.changelogs[name]: start - 1 if name == primary and start > 0 else start
        for name, (_store, start, _marker) in opened.items()
    }
    read = read_partitions(kafka, starts, partition) if starts else {}
    lost = False  # the cluster's changelog is not the one the local state came from
    rebuilt: list[str] = []
    for name, (store, start, _marker) in opened.items():
        topic = layout.changelogs[name]
        messages, end = read[topic]
        if name == primary and start > 0:
            lost = not _continues(messages, store.meta(META_COMMIT))
            read[topic] = messages[1:], end
        if start > 0 and (lost or start > end):  # the cluster lost the changelog: rebuild
            lost = True
            store.close()
            RocksStore.destroy(layout.store_path(name, partition))
            opened[name] = RocksStore(layout.store_path(name, partition)), 0, None
            rebuilt.append(topic)
    if rebuilt:
        read |= read_partitions(kafka, dict.fromkeys(rebuilt, 0), partition)
    views: dict[str, StoreView] = {}
    marker: Marker | None = None
    committed: int | None = None
    max_seq, records, scratch, compensated = 0, 0, [], 0
    for name, (store, start, local_marker) in opened.items():
        messages, end = read[layout.changelogs[name]]
        if start == 0:
            scratch.append(name)
        restored = fold_changelog(messages, committed)
        if committed is None:  # the primary store decides what is committed
            marker = restored.marker or local_marker
            committed = marker.seq if marker else 0
        views[name] = _apply(store, restored, marker, end, name)
        records += len(messages)
        compensated += len(restored.compensations)
        max_seq = max(max_seq, restored.max_seq, local_marker.seq if local_marker else 0)
    task = Task(
        partition,
        views,
        dict(layout.changelogs),
        clock=layout.clock,
        grace_ms=layout.grace_ms,
        seq=max(max_seq, committed or 0),
        offsets=dict(marker.offsets) if marker else {},
        stream_time_ms=marker.stream_time_ms if marker else 0,
    )
    report = RestoreReport(partition, records, time.monotonic() - started, scratch, compensated)
    return task, report


def _continues(messages: list[tuple[bytes, bytes | None]], local_marker: bytes | None) -> bool:
    """The changelog read from the local checkpoint's last record on is the one the local
    state came from: that record is the very commit marker the checkpoint holds. (A cluster
    recreated under the same names may well have records at the same offsets.)"""
    if not messages or local_marker is None:
        return False
    key, value = messages[0]
    return key == MARKER_KEY and value == local_marker


def _open(layout: TaskLayout, name: str, partition: int) -> tuple[StateStore, int, Marker | None]:
    path = layout.store_path(name, partition)
    if not path.exists():  # nothing local: a new store, opened once
        return RocksStore(path), 0, None
    store = RocksStore(path)
    marker, offset = local_checkpoint(store)
    if offset is None:  # no checkpoint: whatever is on disk is not trusted
        store.close()
        RocksStore.destroy(path)
        return RocksStore(path), 0, None
    return store, offset, marker


def _apply(
    store: StateStore, restored: Restored, marker: Marker | None, end: int, name: str
) -> StoreView:
    meta = checkpoint_meta(marker or Marker(0, {}, 0), end)
    members = group_members(restored.values, store.get)  # read before the values are applied
    store.write_batch(members | restored.values, meta)
    view = StoreView(name, store)
    for key, value in restored.compensations.items():  # re-written as committed by the worker
        view.dirty[key] = value
        view.before[key] = value
    return view
