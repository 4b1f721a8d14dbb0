"""Crash points: ``wayline up`` in replay mode, with its profile worker as a process of its own,
gives exactly what the dry run gives while the log arrives in requests and processes die: the
profile worker SIGKILLed three times (merges, held records and due times in flight), or every
process at once twice (validate, identity with its held events, profile), or one of two
profile workers sharing the partitions SIGKILLed for good (the other takes over). Each copy a
crash repeats (same id, same bytes) is counted once."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from test_profiles_replay import ProfileWorker

from equality import CONFIG, comparable, differences, dry_run, resent_and_shuffled
from journeys import raw_key
from kafkatest import produce, read_topic
from shoppers import shoppers
from wayline.streams.profileview import ProfileView
from waylineproc import Running

pytestmark = [pytest.mark.e2e, pytest.mark.soak, pytest.mark.timeout(600)]


def once_each(running: Running, topic: str) -> tuple[list[dict[str, Any]], int]:
    """The items of ``topic`` (its records; for the segments topic, the transitions its
    records carry), one per id (every copy must be byte-identical); and how many copies there
    were beyond the first."""
    by_id: dict[str, bytes] = {}
    found = read_topic(running.kafka, topic, expect=0)
    items = [orjson.loads(m.value or b"") for m in found]
    if topic == running.topics.segments:
        items = [t for record in items for t in record["transitions"]]
    for item in items:
        value = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
        ident = item["id"]
        assert by_id.setdefault(ident, value) == value, f"copies of {ident} differ"
    return [orjson.loads(v) for v in by_id.values()], len(items) - len(by_id)


def kill_everything(running: Running, worker: ProfileWorker) -> None:
    """The machine goes down: every Wayline process at once; then both start again."""
    assert running.process is not None
    os.kill(running.process.pid, signal.SIGKILL)
    worker.kill()
    running.process.wait(10)
    running.start()
    worker.start()


def kill_profile_worker(running: Running, worker: ProfileWorker) -> None:
    worker.kill()
    worker.start()


class TwoProfileWorkers(ProfileWorker):
    """Two ``wayline worker profile`` processes sharing the partitions (scale-out), each with
    its own data directory; ``kill`` takes the second one down for good."""

    def __init__(self, running: Running) -> None:
        super().__init__(running)
        self.second = ProfileWorker(running, "profile-worker-2")

    def start(self) -> None:
        super().start()
        if self.second.process is None:
            self.second.start()
            log = self.running.cwd / "profile-worker-2.log"
            deadline = time.monotonic() + 60
            while "worker profile assigned [" not in (log.read_text() if log.exists() else ""):
                assert time.monotonic() < deadline, "the second worker got no partitions"
                time.sleep(0.2)

    def kill(self) -> None:
        self.second.kill()

    def stop(self) -> None:
        self.second.stop()
        super().stop()


def kill_one_of_two(running: Running, workers: ProfileWorker) -> None:
    """The other one takes over the partitions (and restores their state from changelogs)."""
    del running
    workers.kill()


CHUNKS = 25  # the log is sent in this many requests, 0.4 s apart, while processes die


@pytest.mark.parametrize(
    ("workers", "kill", "after_chunks"),
    [
        (ProfileWorker, kill_profile_worker, (6, 12, 18)),
        (ProfileWorker, kill_everything, (8, 16)),
        (TwoProfileWorkers, kill_one_of_two, (12,)),
    ],
    ids=["profile_worker_killed_3x", "everything_killed_2x", "one_of_two_profile_workers_killed"],
)
def test_crashes_change_nothing_the_dry_run_says(
    replay_up_without_profile: Running,
    workers: type[ProfileWorker],
    kill: Callable[[Running, ProfileWorker], None],
    after_chunks: tuple[int, ...],
) -> None:
    running = replay_up_without_profile
    log = resent_and_shuffled(shoppers(150, seed=23), random.Random(29))
    expected = dry_run(CONFIG, log)
    worker = workers(running)
    view = ProfileView(running.kafka, running.topics.profiles)
    view.start()
    worker.start()
    records = [(raw_key(e), orjson.dumps(e)) for e in log]
    size = len(records) // CHUNKS + 1
    sent = [0]

    def send() -> None:
        for start in range(0, len(records), size):
            produce(running.kafka, running.topics.raw, records[start : start + size])
            sent[0] += 1
            time.sleep(0.4)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        for chunks in after_chunks:
            while sent[0] < chunks and sender.is_alive():
                time.sleep(0.02)
            kill(running, worker)
        sender.join(120)
        assert sent[0] == CHUNKS
        deadline = time.monotonic() + 360
        while time.monotonic() < deadline:
            got = {pid: comparable(doc) for pid, doc in view.documents().items()}
            if got == expected["profiles"]:
                break
            time.sleep(1)
        time.sleep(2)  # the last batch's transitions and triggers
        transitions, repeated = once_each(running, running.topics.segments)
        triggers, repeated_triggers = once_each(running, running.topics.triggers)
    finally:
        worker.stop()
        view.stop()
    live = {
        "transitions": Counter(
            (t["profile_id"], t["transition"], t["segment"], t["at"]) for t in transitions
        ),
        "triggers": Counter(orjson.dumps(t, option=orjson.OPT_SORT_KEYS) for t in triggers),
        "profiles": got,
    }
    found = differences(expected, live)
    assert found == [], "\n".join(found)
    assert sum(expected["transitions"].values()) > 800
    crashes = len(after_chunks)
    print(f"{crashes} crashes: {repeated} transitions, {repeated_triggers} triggers repeated")
