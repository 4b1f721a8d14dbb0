"""The live view reads Wayline's topics as a consumer would: a transition or trigger repeated by
a crash (same id, same bytes) counts once, and the raw partitions' marks are not events."""

from __future__ import annotations

import orjson
import pytest

from kafkatest import produce, wait_for
from wayline.schemas.examples import examples
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.observer import Observer

pytestmark = pytest.mark.broker


def test_repeats_of_a_crash_count_once_and_marks_are_not_events(
    kafka: KafkaConfig, topics: Topics
) -> None:
    cart = examples("triggers")["cart_abandoned"]
    other = {**cart, "id": "another-trigger", "subject": "p-2"}
    triggers = [orjson.dumps(t) for t in (cart, other, cart)]  # the first repeated by a crash
    transitions = examples("segments")
    enter, exit_ = transitions["enter"], transitions["exit_timer"]
    records = [orjson.dumps(t) for t in (enter, exit_, enter)]
    produce(kafka, topics.triggers, [(b"p", t) for t in triggers])
    produce(kafka, topics.segments, [(b"p", t) for t in records])
    events = [orjson.dumps(e) for e in examples("events").values()]
    produce(kafka, topics.events, [(b"k", e) for e in events])
    mark = orjson.dumps({"partition": 0, "at_ms": 1})
    produce(kafka, topics.events, [(b"~mark", mark)], headers=(("wayline.kind", b"tick"),))

    observer = Observer(kafka, topics)
    observer.start()
    try:
        wait_for(lambda: observer.snapshot().validated >= len(events), 30, "the events")
        wait_for(lambda: observer.snapshot().triggers_fired >= 2, 30, "the triggers")
        wait_for(lambda: sum(observer.snapshot().segment_sizes.values()) >= 1, 30, "segments")
        snap = observer.snapshot()
    finally:
        observer.stop()
    assert snap.triggers_fired == 2
    assert len(snap.latest_triggers) == 2
    assert snap.validated == len(events)  # the mark is not an event
    # vip and repeat_buyers: entered once (the record's repeat changes nothing); active_30d:
    # exited (never entered here)
    assert snap.segment_sizes == {"vip": 1, "repeat_buyers": 1, "active_30d": 0}
