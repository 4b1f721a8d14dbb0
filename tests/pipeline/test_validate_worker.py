"""The validate worker on the real broker: raw → canonical events, invalid → dead letters."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from kafkatest import TEST_CONSUMER, committed, produce, read_topic, running, wait_for
from wayline.config.workspace import DEMO_CONFIG
from wayline.connectors.collector import Collector, Record, stamp_event
from wayline.schemas.canonical import CANONICAL, FORM_HEADER
from wayline.schemas.examples import EXAMPLE_PHONE_REGION, ROOT, examples, invalid_raw_examples
from wayline.schemas.timestamps import format_timestamp
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.envelope import Envelope
from wayline.streams.registry import WorkerContext, default_registry
from wayline.streams.worker import Worker, WorkerOptions

pytestmark = pytest.mark.broker

SOURCE_HEADERS = (("wayline.source", b"pos-berlin"), ("wayline.channel", b"store"))


def validate_worker(kafka: KafkaConfig, topics: Topics, state_dir: Path) -> Worker:
    context = WorkerContext(
        topics=topics,
        kafka=kafka,
        phone_region=EXAMPLE_PHONE_REGION,
        options=WorkerOptions(consumer_overrides=dict(TEST_CONSUMER), state_dir=state_dir),
    )
    return default_registry()["validate"].create(context)


def canonical_events(
    kafka: KafkaConfig, topics: Topics, expect: int, settle_s: float = 0.0
) -> list[Envelope]:
    """The events on ``wayline.events`` (without the raw partitions' marks)."""
    found = read_topic(kafka, topics.events, expect=expect, settle_s=settle_s)
    return [m for m in found if m.header("wayline.kind") != b"tick"]


def marks(kafka: KafkaConfig, topics: Topics) -> dict[int, int]:
    """Raw partition → the newest event time its mark reported."""
    out: dict[int, int] = {}
    for message in read_topic(kafka, topics.events, expect=1):
        if message.header("wayline.kind") == b"tick":
            mark = orjson.loads(message.value or b"")
            out[mark["partition"]] = max(out.get(mark["partition"], 0), mark["at_ms"])
    return out


def test_valid_and_invalid_events_each_land_exactly_once(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    valid = examples("events.raw")
    invalid = invalid_raw_examples()
    produce(kafka, topics.raw, [(name.encode(), orjson.dumps(v)) for name, v in valid.items()])
    produce(kafka, topics.raw, [(e.name.encode(), e.payload) for e in invalid])

    worker = validate_worker(kafka, topics, tmp_path)
    with running(worker):
        wait_for(lambda: worker.stats().events_in == len(valid) + len(invalid), what="the batch")
        stats = worker.stats()
    assert stats.dead_lettered == len(invalid)

    events = canonical_events(kafka, topics, expect=len(valid))
    assert len(events) == len(valid)
    # each raw partition's mark is the newest event time of the events it gave
    newest: dict[int, int] = {}
    raw_partition = {
        orjson.loads(m.value or b"")["messageId"]: m.partition
        for m in read_topic(kafka, topics.raw, expect=len(valid) + len(invalid))
        if b"messageId" in (m.value or b"")
    }
    for message in events:
        p = raw_partition[orjson.loads(message.value or b"")["messageId"]]
        newest[p] = max(newest.get(p, 0), message.timestamp_ms)
    assert marks(kafka, topics) == newest
    goldens = {
        name: json.loads((ROOT / "events" / f"{name}.json").read_text("utf-8")) for name in valid
    }
    by_id = {golden["messageId"]: golden for golden in goldens.values()}
    for message in events:
        event = orjson.loads(message.value or b"")
        assert event == by_id[event["messageId"]]
        ids = event["identifiers"]
        strongest = next(
            f"{kind}:{ids[kind]}"
            for kind in ("user_id", "anonymous_id", "email", "phone", "device_id")
            if ids[kind]
        )
        assert message.key == strongest.encode()

    dead = read_topic(kafka, topics.dlq, expect=len(invalid))
    assert len(dead) == len(invalid)
    expected = {e.name: e for e in invalid}
    schema = json.loads((ROOT.parent / "json" / "events.dlq.json").read_text("utf-8"))
    for message in dead:
        example = expected.pop((message.key or b"").decode())
        assert message.value == example.payload, "the original bytes are kept"
        headers = {k: v.decode() for k, v in message.headers}
        assert headers["wayline.dlq.reason"] == example.reason.value
        assert headers["wayline.dlq.topic"] == topics.raw
        assert headers["wayline.dlq.worker"] == "validate"
        assert headers["wayline.dlq.detail"]
        Draft202012Validator(schema).validate(headers)
    assert expected == {}

    offsets = committed(kafka, worker.group, topics.raw)
    produced = Counter(
        m.partition for m in read_topic(kafka, topics.raw, len(valid) + len(invalid))
    )
    assert offsets == {p: produced.get(p, 0) for p in offsets}


def test_a_restarted_worker_does_not_reprocess(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    raw = examples("events.raw")
    produce(kafka, topics.raw, [(n.encode(), orjson.dumps(v)) for n, v in raw.items()])
    first = validate_worker(kafka, topics, tmp_path)
    with running(first):
        wait_for(lambda: first.stats().events_in == len(raw), what="the first run")

    second = validate_worker(kafka, topics, tmp_path)
    with running(second):
        wait_for(lambda: bool(second.stats().assigned), what="the second worker's assignment")
        produce(kafka, topics.raw, [(b"late", orjson.dumps(raw["identify_traits"]))])
        wait_for(lambda: second.stats().events_in == 1, what="the late event")
    assert second.stats().events_in == 1, "committed events were processed again"
    assert len(canonical_events(kafka, topics, expect=len(raw) + 1, settle_s=0.5)) == len(raw) + 1


def test_source_headers_set_channel_and_source(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    raw = dict(examples("events.raw")["store_order_loyalty"])
    raw["context"] = {k: v for k, v in raw["context"].items() if k != "channel"}
    produce(kafka, topics.raw, [(None, orjson.dumps(raw))], headers=SOURCE_HEADERS)
    worker = validate_worker(kafka, topics, tmp_path)
    with running(worker):
        (message,) = canonical_events(kafka, topics, expect=1)
    event = orjson.loads(message.value or b"")
    assert event["context"]["channel"] == "store"
    assert event["source"] == "pos-berlin"


def test_events_the_collector_normalized_come_out_as_if_normalized_here(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    """The collector writes the canonical form with ``wayline.form: canonical``; the worker
    forwards it instead of normalizing again. Each example, through the collector and stamped
    the same way without the mark, gives the same bytes, time and key on ``wayline.events``; a
    record marked canonical that is not is dead-lettered, and the partition moves on."""
    sent: list[Record] = []

    async def send(records: Sequence[Record]) -> None:
        sent.extend(records)

    source = DEMO_CONFIG.sources[0]
    collector = Collector(DEMO_CONFIG, topics, send, phone_region=EXAMPLE_PHONE_REGION)
    received = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    valid = list(examples("events.raw").values())
    reply = asyncio.run(collector.deliver([dict(e) for e in valid], source, {}, received))
    assert reply.status == 200
    assert len(sent) == len(valid)
    assert all(r.headers[-1] == (FORM_HEADER, CANONICAL) for r in sent)
    plain = []
    for event in (dict(e) for e in valid):
        stamp_event(event, {}, source.channel, format_timestamp(received))
        plain.append((_key_of(event), orjson.dumps(event)))
    marked = tuple(sent[0].headers)
    source_headers = tuple((n, v) for n, v in marked if n != FORM_HEADER)
    produce(kafka, topics.raw, [(r.key, r.value) for r in sent], headers=marked)
    produce(kafka, topics.raw, plain, headers=source_headers)
    mislabelled = orjson.dumps(valid[0] | {"messageId": "raw-but-marked"})
    produce(kafka, topics.raw, [(b"odd", mislabelled)], headers=marked)

    worker = validate_worker(kafka, topics, tmp_path)
    with running(worker):
        wait_for(lambda: worker.stats().events_in == 2 * len(valid) + 1, what="every record")
    assert worker.stats().dead_lettered == 1
    (dead,) = read_topic(kafka, topics.dlq, expect=1)
    assert dead.header("wayline.dlq.reason") == b"invalid_field"
    copies: dict[str, list[tuple[bytes, int, bytes | None]]] = {}
    for message in canonical_events(kafka, topics, expect=2 * len(valid)):
        value = message.value or b""
        entry = (value, message.timestamp_ms, message.key)
        copies.setdefault(orjson.loads(value)["messageId"], []).append(entry)
    assert len(copies) == len(valid)
    assert all(len(pair) == 2 and pair[0] == pair[1] for pair in copies.values()), copies


def _key_of(event: dict[str, Any]) -> bytes:
    return str(event.get("userId") or event.get("anonymousId") or event["messageId"]).encode()
