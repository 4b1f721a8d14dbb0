"""Nothing a client sends stops Wayline: events nested at any depth (in traits, properties,
context, arrays), through the collector, the real Segment client and straight onto the raw
topic; a 500 KB batch of a quarter-million items. Each bad event gets its reason, its good
neighbours are accepted, no answer is a 5xx, memory stays bounded, and the pipeline carries on
with the next event within seconds."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from segment.analytics import Client as SegmentClient

from kafkatest import produce, read_events, read_topic, wait_for
from waylineproc import API_KEY, Running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

WEB = ("wk_web_e2e_1", "")
DEPTHS = [33, 100, 251, 253, 300, 700, 1000]  # beyond ~1,020, JSON parsers refuse the body


def deep(depth: int, arrays: bool = False) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if arrays else {"x": value}
    return value


def good(i: int | str) -> dict[str, Any]:
    return {"type": "track", "event": "Product Viewed", "userId": f"u-{i}", "messageId": f"g-{i}"}


def nested_json(depth: int, arrays: bool = False) -> bytes:
    """``depth`` levels of objects (or arrays) around a 1, as JSON: no encoder takes 1,000."""
    return (
        (b"[" * depth + b"1" + b"]" * depth) if arrays else b'{"x":' * depth + b"1" + b"}" * depth
    )


def hostile(depth: int, where: str) -> bytes:
    """An event, as JSON, whose ``where`` nests ``depth`` levels below the event."""
    head = b'{"userId":"d-%d","messageId":"deep-%s-%d",' % (depth, where.encode(), depth)
    if where == "traits":
        return head + b'"type":"identify","traits":' + nested_json(depth - 1) + b"}"
    if where == "properties":
        inner = nested_json(depth - 2, arrays=True)
        return head + b'"type":"track","event":"X","properties":{"list":' + inner + b"}}"
    return head + b'"type":"page","name":"Home","context":' + nested_json(depth - 1) + b"}"


def batch_of(events: list[bytes]) -> bytes:
    return b'{"batch":[' + b",".join(events) + b"]}"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_events_nested_at_any_depth_are_refused_alone(wayline_up: Running) -> None:
    running = wayline_up
    replies: list[httpx.Response] = []
    expected_deep = 0
    with httpx.Client(base_url=running.url, auth=WEB, timeout=30) as client:
        for n, depth in enumerate(DEPTHS):
            for where in ("traits", "properties", "context"):
                batch = [orjson.dumps(good(f"{where}-{n}-{i}")) for i in range(3)]
                body = batch_of([*batch, hostile(depth, where)])
                replies.append(client.post("/v1/batch", content=body))
                expected_deep += 1
        too_deep_to_parse = batch_of([hostile(1030, "traits")])
        refused = client.post("/v1/batch", content=too_deep_to_parse)
    assert [r.status_code for r in replies] == [400] * len(replies), replies[0].text
    for reply in replies:
        body = reply.json()
        assert "accepted" in body, body
        assert len(body["accepted"]) == 3
        ((rejected),) = body["rejected"]
        assert rejected["reason"] == "nested_too_deep"
        assert "nest deeper than 32 levels" in rejected["errors"][0]["message"]
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_json")

    letters = read_topic(running.kafka, running.topics.dlq, expect=expected_deep)
    reasons = [m.header("wayline.dlq.reason") for m in letters]
    assert reasons.count(b"nested_too_deep") == expected_deep
    events = read_events(running.kafka, running.topics, expect=3 * len(replies))
    assert len(events) == 3 * len(replies)

    # the pipeline carries on: the next event is in a profile within seconds
    with httpx.Client(base_url=running.url, auth=WEB, timeout=30) as client:
        assert client.post("/v1/batch", json={"batch": [good(99_999)]}).status_code == 200
    started = time.monotonic()
    wait_for(lambda: _has_profile(running, "u-99999"), 30, "the next event's profile")
    print(f"next event in a profile after {time.monotonic() - started:.1f} s")


def test_the_segment_client_loses_no_good_event_beside_a_deep_one(wayline_up: Running) -> None:
    errors: list[str] = []
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    client = SegmentClient(
        "wk_web_e2e_1",
        host=wayline_up.url,
        on_error=lambda e, _batch: errors.append(str(e)),
        upload_size=100,
    )
    for i in range(9):
        client.track(f"s-{i}", "Product Viewed", {"sku": i})
    client.identify("s-deep", deep(251))
    client.flush()
    client.join()
    events = read_events(wayline_up.kafka, wayline_up.topics, expect=9)
    assert sorted(e["userId"] for e in events) == [f"s-{i}" for i in range(9)]
    assert len(errors) == 1  # the client was told, once, that one event was refused


def test_raw_messages_nested_deep_are_dead_lettered_by_the_validate_worker(
    wayline_up: Running,
) -> None:
    running = wayline_up
    arrays = b'{"type":"track","event":"X","userId":"r","properties":{"p":' + b"[" * 300
    arrays += b"1" + b"]" * 300 + b"}}"
    objects = hostile(300, "traits")
    produce(running.kafka, running.topics.raw, [(b"r", arrays), (b"d", objects)])
    produce(running.kafka, running.topics.raw, [(b"n", orjson.dumps(good(7)))])
    letters = read_topic(running.kafka, running.topics.dlq, expect=2)
    assert sorted(m.value or b"" for m in letters) == sorted([arrays, objects]), "bytes kept"
    assert {m.header("wayline.dlq.reason") for m in letters} == {b"nested_too_deep"}
    wait_for(lambda: _has_profile(running, "u-7"), 30, "the next event's profile")


def test_a_quarter_million_item_batch_is_refused_in_bounded_memory(wayline_up: Running) -> None:
    running = wayline_up
    assert running.process is not None
    body = b'{"batch":[' + b",".join([b"0"] * 255_000) + b"]}"
    assert len(body) <= 500 * 1024
    before = peak_rss_mb(running.process.pid)
    with httpx.Client(base_url=running.url, auth=WEB, timeout=60) as client:
        replies = [client.post("/v1/batch", content=body) for _ in range(5)]
    grown = peak_rss_mb(running.process.pid) - before
    assert {(r.status_code, r.json()["code"]) for r in replies} == {(400, "too_many_events")}
    assert "2500" in replies[0].json()["message"]
    assert grown < 100, f"peak memory grew by {grown:.0f} MB"
    print(f"5 junk batches: peak RSS grew {grown:.1f} MB")
    assert read_topic(running.kafka, running.topics.dlq, expect=0, settle_s=1) == []


def _has_profile(running: Running, user: str) -> bool:
    with httpx.Client(base_url=running.url, timeout=10) as api:
        reply = api.get(
            f"/v1/profiles/user_id/{user}", headers={"Authorization": f"Bearer {API_KEY}"}
        )
    return reply.status_code == 200
