"""Restore on assignment: from the local checkpoint or from scratch, and a batch that crashed
between its changelog writes and its commit marker is reverted, not counted."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from foldworker import NAME, STORES, fold_topics, fold_worker
from kafkatest import produce, running, wait_for
from wayline.schemas.topics import Topics
from wayline.streams.admin import delete_topics, ensure_topics
from wayline.streams.changelog import (
    DATA_PREFIX,
    MARKER_KEY,
    Marker,
    Record,
    decode_record,
    encode_record,
)
from wayline.streams.clients import KafkaConfig
from wayline.streams.restore import read_partition, read_partitions
from wayline.streams.store import RocksStore

pytestmark = pytest.mark.broker


@pytest.fixture
def topics(kafka: KafkaConfig) -> Iterator[Topics]:
    made = fold_topics(f"t{uuid.uuid4().hex[:10]}")
    specs = made.specs({NAME: STORES})
    ensure_topics(kafka, specs)
    yield made
    delete_topics(kafka, [s.name for s in specs])


def amounts(key: str, start: int, count: int) -> list[tuple[bytes, bytes]]:
    return [
        (key.encode(), orjson.dumps({"id": f"{key}-{i}", "amount": 10}))
        for i in range(start, start + count)
    ]


def run_until(kafka: KafkaConfig, topics: Topics, state_dir: Path, events_in: int) -> None:
    worker = fold_worker(kafka, topics.prefix, state_dir)
    with running(worker):
        wait_for(lambda: worker.stats().events_in >= events_in, 60, f"{events_in} events")
    assert worker.stats().events_in == events_in


def partition_of(kafka: KafkaConfig, topics: Topics, key: bytes) -> tuple[int, Marker]:
    """The partition holding ``key`` and its last commit marker."""
    for partition in range(topics.partitions):
        records, _ = read_partition(kafka, topics.changelog(NAME, "sums"), partition, 0)
        keys = {k for k, _ in records}
        if DATA_PREFIX + key in keys:
            markers = [Marker.decode(v) for k, v in records if k == MARKER_KEY and v]
            return partition, markers[-1]
    raise AssertionError(f"{key!r} not in the changelog")


def local_sum(state_dir: Path, partition: int, key: bytes) -> int:
    store = RocksStore(state_dir / NAME / "sums" / str(partition))
    try:
        return int(store.get(key) or b"0")
    finally:
        store.close()


@pytest.mark.parametrize("local", ["checkpoint", "scratch"])
def test_a_batch_without_marker_is_reverted(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path, local: str
) -> None:
    state_dir = tmp_path / "state"
    produce(kafka, topics.raw, amounts("alice", 0, 30))
    run_until(kafka, topics, state_dir, 30)
    partition, marker = partition_of(kafka, topics, b"alice")
    assert local_sum(state_dir, partition, b"alice") == 300

    # A batch that wrote its changelog record, then died before its marker: value 999_999.
    crashed = Record(marker.seq + 1, b"999999", b"300")
    changelog = topics.changelog(NAME, "sums")
    produce_to(kafka, changelog, partition, DATA_PREFIX + b"alice", encode_record(crashed))
    if local == "scratch":
        shutil.rmtree(state_dir)

    produce(kafka, topics.raw, amounts("alice", 30, 5))
    run_until(kafka, topics, state_dir, 5)
    assert local_sum(state_dir, partition, b"alice") == 350
    records, _ = read_partition(kafka, changelog, partition, 0)
    values = [
        int(decode_record(v).new or b"0") for k, v in records if k == DATA_PREFIX + b"alice" and v
    ]
    assert values[-1] == 350
    assert 300 in values[values.index(999999) :], "the crashed value was compensated"


def test_restore_from_checkpoint_reads_only_the_tail(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    produce(kafka, topics.raw, amounts("bob", 0, 400))
    run_until(kafka, topics, state_dir, 400)
    checkpointed = fold_worker(kafka, topics.prefix, state_dir)
    with running(checkpointed):
        wait_for(lambda: len(checkpointed.stats().assigned) == topics.partitions, 60, "assign")
    fresh = fold_worker(kafka, topics.prefix, tmp_path / "other")
    with running(fresh):
        wait_for(lambda: len(fresh.stats().assigned) == topics.partitions, 60, "assign")
    assert checkpointed.stats().restored_records == 0
    assert fresh.stats().restored_records >= 2  # the records of bob plus the markers
    partition, _ = partition_of(kafka, topics, b"bob")
    assert local_sum(tmp_path / "other", partition, b"bob") == 4000


def produce_to(kafka: KafkaConfig, topic: str, partition: int, key: bytes, value: bytes) -> None:
    producer = kafka.producer()
    producer.produce(topic, value, key, partition=partition)
    assert producer.flush(10) == 0


def test_a_checkpoint_past_the_changelog_end_restores_from_scratch_at_once(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    """Local state of a cluster that is gone (a fresh in-memory broker, a recreated changelog):
    its checkpoints point past the new changelog's end, so the task starts from scratch instead
    of waiting for offsets that will never come."""
    state_dir = tmp_path / "state"
    produce(kafka, topics.raw, amounts("carol", 0, 40))
    run_until(kafka, topics, state_dir, 40)
    again = fold_topics(f"t{uuid.uuid4().hex[:10]}")  # the same worker and stores, new topics
    specs = again.specs({NAME: STORES})
    ensure_topics(kafka, specs)
    try:
        produce(kafka, again.raw, amounts("carol", 100, 5))
        worker = fold_worker(kafka, again.prefix, state_dir)
        with running(worker):
            wait_for(lambda: worker.stats().events_in >= 5, 30, "5 events after the restore")
        assert worker.stats().restore_seconds < 10 * again.partitions
        partition, _ = partition_of(kafka, again, b"carol")
        assert local_sum(state_dir, partition, b"carol") == 50  # the lost cluster's 400 are gone
    finally:
        delete_topics(kafka, [s.name for s in specs])


def test_a_tasks_changelogs_read_together_give_what_each_gives_alone(
    kafka: KafkaConfig, topics: Topics
) -> None:
    """A task's changelogs are restored through one consumer: a changelog with records (read
    from the start and from the middle), an empty one, and one whose start lies past its end
    (a checkpoint of a cluster that is gone) each come back as reading them one by one does."""
    full, empty = topics.changelog(NAME, "sums"), topics.changelog(NAME, "timers")
    for i in range(7):
        produce_to(kafka, full, 2, f"k{i}".encode(), f"v{i}".encode())
    alone = {
        (full, 0): read_partition(kafka, full, 2, 0),
        (full, 4): read_partition(kafka, full, 2, 4),
        (empty, 0): read_partition(kafka, empty, 2, 0),
    }
    assert [k for k, _ in alone[(full, 0)][0]] == [f"k{i}".encode() for i in range(7)]
    assert alone[(full, 0)][1] == 7
    assert len(alone[(full, 4)][0]) == 3
    assert alone[(empty, 0)] == ([], 0)
    for start in (0, 4):
        together = read_partitions(kafka, {full: start, empty: 0}, 2)
        assert together == {full: alone[(full, start)], empty: alone[(empty, 0)]}
    past = read_partitions(kafka, {full: 0, empty: 50}, 2, silent_s=1.0)
    assert past[full] == alone[(full, 0)]
    assert past[empty][0] == []  # and at once: no wait for offsets that will never come
    assert past[empty][1] <= 50
