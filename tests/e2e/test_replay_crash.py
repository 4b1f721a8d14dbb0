"""Crash points: ``wayline up`` in replay mode with its profile worker as a process of its own
gives exactly what the dry run gives — undisturbed, and SIGKILLed three times while merges,
held records and due times are in flight, once each copy a crash repeats (same id, same bytes)
is counted once."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from equality import CONFIG, comparable, differences, dry_run, resent_and_shuffled
from journeys import raw_key
from kafkatest import produce, read_topic
from shoppers import shoppers
from test_profiles_replay import ProfileWorker
from waylineproc import Running

from wayline.streams.profileview import ProfileView

pytestmark = [pytest.mark.e2e, pytest.mark.soak, pytest.mark.timeout(600)]


def once_each(running: Running, topic: str) -> tuple[list[dict[str, Any]], int]:
    """The records of ``topic``, one per id (every copy must be byte-identical); and how many
    copies there were beyond the first."""
    by_id: dict[str, bytes] = {}
    found = read_topic(running.kafka, topic, expect=0)
    for message in found:
        value = message.value or b""
        ident = orjson.loads(value)["id"]
        assert by_id.setdefault(ident, value) == value, f"copies of {ident} differ"
    return [orjson.loads(v) for v in by_id.values()], len(found) - len(by_id)


@pytest.mark.parametrize("kills", [0, 3])
def test_the_profile_worker_s_crashes_change_nothing_the_dry_run_says(
    replay_up_without_profile: Running, kills: int
) -> None:
    running = replay_up_without_profile
    log = resent_and_shuffled(shoppers(150, seed=23), random.Random(29))
    expected = dry_run(CONFIG, log)
    worker = ProfileWorker(running)
    view = ProfileView(running.kafka, running.topics.profiles)
    view.start()
    worker.start()
    try:
        produce(running.kafka, running.topics.raw, [(raw_key(e), orjson.dumps(e)) for e in log])
        for threshold in (150, 400, 700)[:kills]:  # snapshots published before each kill
            deadline = time.monotonic() + 120
            while view.records < threshold and time.monotonic() < deadline:
                time.sleep(0.05)
            worker.kill()
            worker.start()
        deadline = time.monotonic() + 240
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
    print(f"copies after {kills} SIGKILLs: {repeated} transitions, {repeated_triggers} triggers")
