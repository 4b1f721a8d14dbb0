"""T1 and T7: duplicates, malformed input, keys and rate limits against a running collector —
exact counts on the topics, the status each client acts on, never a 5xx."""

from __future__ import annotations

import gzip
import time
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

from kafkatest import read_events, read_topic
from waylineproc import Running

pytestmark = pytest.mark.e2e

WEB = ("wk_web_e2e_1", "")


def event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"m-{i}",
        "userId": f"user-{i % 50}",
        "event": "Product Viewed",
        "properties": {"sku": f"SH-{i % 9}"},
        **extra,
    }


def post(
    client: httpx.Client,
    path: str,
    body: bytes,
    auth: tuple[str, str] | None = WEB,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    response = client.post(
        path, content=body, auth=auth or httpx.USE_CLIENT_DEFAULT, headers=headers
    )
    assert response.status_code < 500, response.text
    return response


def malformed_events() -> list[tuple[dict[str, Any], str]]:
    """Events refused one by one inside valid batches, and the reason each is dead-lettered."""
    out: list[tuple[dict[str, Any], str]] = []
    for i in range(32):  # 6 kinds x 32 = 192 events, plus 8 refused requests = 200
        out += [
            ({"type": "track", "messageId": f"bad-id-{i}", "event": "X"}, "missing_identifier"),
            (event(10_000 + i, properties="a string"), "invalid_field"),
            (event(20_000 + i, timestamp="yesterday at noon"), "invalid_timestamp"),
            (event(30_000 + i, properties={"blob": "x" * 33_000}), "event_too_large"),
            (event(40_000 + i, type="purchase"), "unsupported_type"),
            (event(50_000 + i, userId={"id": 1}), "invalid_field"),
        ]
    return out


def request_level_failures() -> list[tuple[bytes, dict[str, str], int]]:
    """Whole requests refused: body, headers, expected status."""
    big = orjson.dumps({"batch": [event(i, properties={"p": "y" * 6_000}) for i in range(100)]})
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}")
    nested = b'{"batch": [' + b'{"a":' * 2_000 + b"1" + b"}" * 2_000 + b"]}"
    return [
        (b'{"batch": [', {}, 400),  # bad JSON
        (b'{"batch": [{"type": "track", "userId": "\xff\xfe"}]}', {}, 400),  # invalid UTF-8
        (nested, {}, 400),  # nesting deeper than the parser allows
        (big, {}, 413),  # a 600 KB batch
        (bomb, {"content-encoding": "gzip"}, 413),  # 50 MB of spaces in 50 KB of gzip
        (b"\x1f\x8b not gzip", {"content-encoding": "gzip"}, 400),
        (b'["an", "array"]', {}, 400),
        (b'{"batch": "not a list"}', {}, 400),
    ]


def test_duplicates_and_malformed_input_exact_counts(wayline_up: Running) -> None:
    statuses: Counter[int] = Counter()
    unique = [event(i) for i in range(2_000)]
    bad = malformed_events()

    def batch(client: httpx.Client, events: list[Any]) -> httpx.Response:
        reply = post(client, "/v1/batch", orjson.dumps({"batch": events}))
        statuses[reply.status_code] += 1
        return reply

    with httpx.Client(base_url=wayline_up.url, timeout=30) as client:
        for start in range(0, 1_000, 100):  # 100 duplicates inside their own batches
            batch(client, unique[start : start + 100] + unique[start : start + 10])
        for k in range(16):  # 192 malformed events mixed into batches with 200 valid ones
            valid = unique[1_000 + k * 200 // 16 : 1_000 + (k + 1) * 200 // 16]
            reply = batch(client, [e for e, _ in bad[k * 12 : (k + 1) * 12]] + valid)
            assert reply.status_code == 400
            assert len(reply.json()["rejected"]) == 12
            assert len(reply.json()["accepted"]) == len(valid)
        for start in range(1_200, 2_000, 100):
            batch(client, unique[start : start + 100])
        for start in range(0, 200, 50):  # 200 duplicates of earlier batches
            batch(client, unique[start : start + 50])
        for body, headers, expected in request_level_failures():
            assert post(client, "/v1/batch", body, headers=headers).status_code == expected
    wayline_up.restart()
    with httpx.Client(base_url=wayline_up.url, timeout=30) as client:  # 200 after a restart
        for start in range(1_200, 1_400, 100):
            batch(client, unique[start : start + 100])

    events = read_events(wayline_up.kafka, wayline_up.topics, len(unique), 60, settle_s=2)
    ids = Counter(e["messageId"] for e in events)
    assert len(events) == len(unique), f"{len(events) - len(unique)} duplicates got through"
    assert set(ids) == {e["messageId"] for e in unique}
    dead = read_topic(wayline_up.kafka, wayline_up.topics.dlq, len(bad), 60, settle_s=1)
    reasons = Counter(dict(m.headers)["wayline.dlq.reason"].decode() for m in dead)
    assert reasons == Counter(reason for _, reason in bad)
    assert all(dict(m.headers)["wayline.dlq.worker"] == b"collector" for m in dead)
    assert statuses == Counter({200: 10 + 8 + 4 + 2, 400: 16})


def test_keys_and_rate_limits(wayline_up: Running) -> None:
    one = orjson.dumps(event(1))
    with httpx.Client(base_url=wayline_up.url, timeout=30) as client:
        assert post(client, "/v1/track", one, auth=None).status_code == 401
        assert post(client, "/v1/track", one, auth=("wk_nope_123", "")).status_code == 401
        revoked = post(client, "/v1/track", one, auth=("wk_web_old_1", ""))
        assert (revoked.status_code, revoked.json()["code"]) == (401, "revoked_write_key")
        in_body = orjson.dumps({**event(2), "writeKey": "wk_web_e2e_1"})
        assert post(client, "/v1/track", in_body, auth=None).status_code == 200

        limited, other = Counter[int](), Counter[int]()
        retry_after: set[str] = set()
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 3:  # pos: 100 events/s allowed, 200/s sent
            batch = [event(100_000 + sent + i) for i in range(20)]
            sent += 20
            reply = post(client, "/v1/batch", orjson.dumps({"batch": batch}), ("wk_pos_e2e_1", ""))
            limited[reply.status_code] += 1
            if reply.status_code == 429:
                retry_after.add(reply.headers["Retry-After"])
            web = orjson.dumps({"batch": [event(200_000 + sent + i) for i in range(20)]})
            other[post(client, "/v1/batch", web).status_code] += 1
            time.sleep(max(0.0, started + sent / 200 - time.monotonic()))
    assert limited[429] > 0
    assert limited[200] > 0
    assert retry_after
    assert all(int(v) >= 1 for v in retry_after)
    assert set(other) == {200}, "another source is never limited"

    raw = read_topic(wayline_up.kafka, wayline_up.topics.raw, 1, 30, settle_s=1)
    accepted = 1 + 20 * (limited[200] + other[200])
    assert len(raw) == accepted, "a refused request produced something"


def test_partial_batch_reply_names_events(wayline_up: Running) -> None:
    batch = [event(1), {"type": "track", "event": "x", "messageId": "no-id"}, event(3)]
    with httpx.Client(base_url=wayline_up.url, timeout=30) as client:
        reply = post(client, "/v1/batch", orjson.dumps({"batch": batch}))
        short = post(
            client,
            "/v1/t",
            orjson.dumps(event(9)),
            headers={"content-type": "text/plain", "origin": "https://shop.example"},
        )
        preflight = client.options(
            "/v1/batch",
            headers={
                "origin": "https://shop.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type",
            },
        )
    assert reply.status_code == 400
    body = reply.json()
    assert [a["messageId"] for a in body["accepted"]] == ["m-1", "m-3"]
    (rejected,) = body["rejected"]
    assert (rejected["index"], rejected["messageId"]) == (1, "no-id")
    assert rejected["reason"] == "missing_identifier"
    assert rejected["errors"][0]["field"] == "userId"
    assert short.status_code == 200
    assert short.headers["access-control-allow-origin"] == "*"
    assert preflight.status_code == 200
