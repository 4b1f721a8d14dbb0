"""The live pipeline in replay mode gives exactly what ``wayline segments test`` gives.

300 omnichannel customers over months (anonymous browsing on one or two devices, carts, e-mails
known only by address, sign-ins that merge them, web and guest store orders, unsubscribes), with
5 % of events re-sent and 10 % shuffled within minutes, go through validate → identity → profile
on the real broker: all at once and slowly, on 1 and 3 partitions. Every segment transition,
every trigger (the whole CloudEvent: id, type, time, occasion, payload) and every profile
document must equal the dry run's over the same log; and the final profiles of the re-sent and
shuffled log must equal those of the clean one.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from equality import CONFIG, comparable, differences, dry_run, resent_and_shuffled
from journeys import raw_key
from kafkatest import produce, read_topic, read_transitions, replay_pipeline, wait_for
from shoppers import shoppers, sign_in_journey
from wayline.config.workspace import WaylineConfig, parse_config
from wayline.streams.clients import KafkaConfig

pytestmark = [pytest.mark.broker, pytest.mark.timeout(900)]

CUSTOMERS = 300


@pytest.fixture(scope="module")
def clean() -> list[dict[str, Any]]:
    return shoppers(CUSTOMERS)


@pytest.fixture(scope="module")
def perturbed(clean: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return resent_and_shuffled(clean, random.Random(19))


@pytest.fixture(scope="module")
def expected(perturbed: list[dict[str, Any]]) -> dict[str, Any]:
    """The dry run over the re-sent and shuffled log."""
    return dry_run(CONFIG, perturbed)


@pytest.fixture(scope="module")
def clean_run(clean: list[dict[str, Any]]) -> dict[str, Any]:
    return dry_run(CONFIG, clean)


def live(
    kafka: KafkaConfig,
    log: list[dict[str, Any]],
    partitions: int,
    slowly: bool,
    tmp: Path,
    config: WaylineConfig = CONFIG,
    chunk: int = 50,
    pause_s: float = 0.01,
    idle_first: bool = False,
) -> dict[str, Any]:
    records = [(raw_key(e), orjson.dumps(e)) for e in log]
    distinct = len({e["messageId"] for e in log})
    with replay_pipeline(kafka, config, partitions, tmp) as (topics, workers):
        if idle_first:  # a pipeline that has been idle (its input told quiet) gets a log
            time.sleep(2 * config.reorder.idle_ms() / 1000 + 3)
        if slowly:  # requests of 50 events, as a client trickling a log in would send them
            trickle(kafka, topics.raw, records, chunk, pause_s)
        else:
            produce(kafka, topics.raw, records)
        _validate, identity, profile = workers

        def settled() -> bool:
            ident, prof = identity.stats().steps, profile.stats().steps
            return (
                ident.get("released_in_order", 0) >= distinct
                and prof.get("events_applied", 0) >= distinct
                and prof.get("handoffs_absorbed", 0) >= ident.get("merges", 1)
            )

        wait_for(settled, 300, "every event and hand-off applied")
        time.sleep(2)  # the last batch's snapshots and transitions
        out = {
            "transitions": Counter(
                (t["profile_id"], t["transition"], t["segment"], t["at"])
                for t in read_transitions(kafka, topics.segments, expect=0)
            ),
            "triggers": Counter(
                orjson.dumps(t, option=orjson.OPT_SORT_KEYS)
                for t in _values(kafka, topics.triggers)
            ),
            "profiles": _latest(kafka, topics.profiles),
            "late": identity.stats().steps["late_for_order"],
            "identity": identity.stats().steps,
        }
    return out


def trickle(
    kafka: KafkaConfig, topic: str, records: list[tuple[bytes, bytes]], size: int, pause_s: float
) -> None:
    """Send ``records`` in acknowledged requests of ``size``, ``pause_s`` apart."""
    producer = kafka.producer()
    for start in range(0, len(records), size):
        for key, value in records[start : start + size]:
            producer.produce(topic, value, key)
        assert producer.flush(30) == 0
        time.sleep(pause_s)


def _values(kafka: KafkaConfig, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(m.value or b"") for m in read_topic(kafka, topic, expect=0)]


def _latest(kafka: KafkaConfig, topic: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any] | None] = {}
    for message in read_topic(kafka, topic, expect=1):
        assert message.key is not None
        latest[message.key.decode()] = orjson.loads(message.value) if message.value else None
    return {pid: comparable(doc) for pid, doc in latest.items() if doc is not None}


def test_the_generated_log_exercises_merges_triggers_and_time(clean_run: dict[str, Any]) -> None:
    expected = clean_run
    kinds = Counter(orjson.loads(t)["type"].rsplit(".", 1)[1] for t in expected["triggers"])
    merged = sum(len(d["merged_from"]) for d in expected["profiles"].values())
    assert merged >= CUSTOMERS  # anonymous and e-mail profiles joined at sign-in
    # nearly every customer ends as one profile (a second device seen only before sign-in not)
    assert CUSTOMERS <= len(expected["profiles"]) <= CUSTOMERS + 15
    assert {"cart_abandoned", "browse_abandoned", "milestone", "segment_entered"} <= set(kinds)
    assert sum(expected["transitions"].values()) > 2000
    exits = [t for t in expected["transitions"] if t[1] == "exit" and t[2] == "browsers"]
    assert len(exits) > 100  # windows close on timers, not only on events


@pytest.mark.parametrize("partitions", [1, 3])
@pytest.mark.parametrize("how", ["at_once", "slowly", "into_idle"])
def test_live_pipeline_equals_the_dry_run(
    kafka: KafkaConfig,
    tmp_path: Path,
    perturbed: list[dict[str, Any]],
    expected: dict[str, Any],
    clean_run: dict[str, Any],
    partitions: int,
    how: str,
) -> None:
    slowly, idle_first = how == "slowly", how == "into_idle"
    got = live(kafka, perturbed, partitions, slowly, tmp_path, idle_first=idle_first)
    found = differences(expected, got)
    assert found == [], "\n".join(found)
    assert got["late"] == 0
    # the re-sent and shuffled log tells the same story as the clean one
    assert got["profiles"] == clean_run["profiles"]


@pytest.mark.parametrize("partitions", [1, 3])
def test_a_sign_in_keeps_the_whole_cart_and_counts_a_guest_order_once(
    kafka: KafkaConfig, tmp_path: Path, partitions: int
) -> None:
    config = parse_config(
        """
clock: replay
reorder: {idle: 1s}
segments:
  - {name: viewers, notify: true,
     rule: {performed: {event: Product Viewed, at_least: 3, within: 14d}}}
triggers:
  cart_abandoned: {after: 60m}
  milestones: {orders: [1, 2]}
"""
    )
    log = sign_in_journey()
    expected = dry_run(config, log)
    got = live(kafka, log, partitions, False, tmp_path, config)
    found = differences(expected, got)
    assert found == [], "\n".join(found)
    triggers = [orjson.loads(t) for t in got["triggers"].elements()]
    (cart,) = [t["data"]["payload"] for t in triggers if t["data"]["trigger"] == "cart_abandoned"]
    assert sorted(i["product_id"] for i in cart["items"]) == ["p1", "p2", "p3"]
    assert cart["value"] == 125.0
    milestones = sorted(
        t["data"]["occasion"] for t in triggers if t["data"]["trigger"] == "milestone"
    )
    assert milestones == ["orders:1", "orders:2"]  # the guest's first order counts once
    entered = [t for t in got["transitions"] if t[1:3] == ("enter", "viewers")]
    assert len(entered) == 1


@pytest.mark.parametrize("slowly", [False, True], ids=["at_once", "slowly"])
def test_a_document_s_windows_are_as_of_its_latest_change_however_it_was_sent(
    kafka: KafkaConfig, tmp_path: Path, slowly: bool
) -> None:
    log: list[dict[str, Any]] = [
        {"type": "track", "event": "Product Viewed", "userId": "u-1", "messageId": "v1",
         "timestamp": "2026-01-01T10:00:00+00:00", "properties": {"product_id": "p1"}},
        {"type": "page", "name": "Home", "userId": "u-1", "messageId": "v2",
         "timestamp": "2026-01-05T10:00:00+00:00"},
    ]  # fmt: skip
    config = parse_config("clock: replay\nreorder: {idle: 1s}\n")
    got = live(kafka, log, 1, slowly, tmp_path, config, chunk=1, pause_s=2.5)
    (doc,) = got["profiles"].values()
    assert doc["computed"]["as_of"] == "2026-01-05T10:00:00.000Z"
    counts = doc["computed"]["event_counts"]
    assert counts["Product Viewed"] == {"all_time": 1, "7d": 1, "30d": 1, "90d": 1}
    assert counts["Page Viewed"] == {"all_time": 1, "7d": 1, "30d": 1, "90d": 1}
    assert got["profiles"] == dry_run(config, log)["profiles"]
