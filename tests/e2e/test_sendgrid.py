"""SendGrid's signed Event Webhook against a running collector."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from kafkatest import read_events
from waylineproc import Running, signed

pytestmark = pytest.mark.e2e

# The shape SendGrid posts (from its Event Webhook reference), one of each kind.
RECORDED: list[dict[str, Any]] = [
    {"email": "Ann@Example.com ", "timestamp": 1763899200, "event": "processed",
     "sg_event_id": "sg-1", "sg_message_id": "msg-1.filter", "category": ["welcome"]},
    {"email": "ann@example.com", "timestamp": 1763899210, "event": "delivered",
     "sg_event_id": "sg-2", "sg_message_id": "msg-1.filter", "response": "250 OK"},
    {"email": "ann@example.com", "timestamp": 1763899300, "event": "open",
     "sg_event_id": "sg-3", "sg_message_id": "msg-1.filter", "useragent": "Mozilla/5.0"},
    {"email": "ann@example.com", "timestamp": 1763899400, "event": "click",
     "sg_event_id": "sg-4", "sg_message_id": "msg-1.filter", "url": "https://shop.example/sale"},
    {"email": "bob@example.com", "timestamp": 1763899500, "event": "bounce",
     "sg_event_id": "sg-5", "sg_message_id": "msg-2.filter", "type": "blocked",
     "reason": "550 5.1.1 unknown user"},
    {"email": "cy@example.com", "timestamp": 1763899510, "event": "dropped",
     "sg_event_id": "sg-6", "sg_message_id": "msg-3.filter", "reason": "Bounced Address"},
    {"email": "dee@example.com", "timestamp": 1763899600, "event": "spamreport",
     "sg_event_id": "sg-7", "sg_message_id": "msg-4.filter"},
    {"email": "ann@example.com", "timestamp": 1763899700, "event": "unsubscribe",
     "sg_event_id": "sg-8", "sg_message_id": "msg-1.filter"},
    {"email": "eve@example.com", "timestamp": 1763899800, "event": "group_unsubscribe",
     "sg_event_id": "sg-9", "sg_message_id": "msg-5.filter", "asm_group_id": 42},
    {"email": "ann@example.com", "timestamp": 1763899900, "event": "deferred",
     "sg_event_id": "sg-10", "sg_message_id": "msg-6.filter", "attempt": "1"},
]  # fmt: skip

EXPECTED = [
    ("Email Sent", "ann@example.com"),
    ("Email Delivered", "ann@example.com"),
    ("Email Opened", "ann@example.com"),
    ("Email Link Clicked", "ann@example.com"),
    ("Email Bounced", "bob@example.com"),
    ("Email Bounced", "cy@example.com"),
    ("Email Marked as Spam", "dee@example.com"),
    ("Unsubscribed", "ann@example.com"),
    ("Unsubscribed", "eve@example.com"),
]


def test_signed_webhook_maps_events_and_forgeries_are_refused(wayline_up: Running) -> None:
    body = json.dumps(RECORDED).encode()
    url = f"{wayline_up.url}/v1/sources/mail/sendgrid"
    forger = ec.generate_private_key(ec.SECP256R1())
    with httpx.Client(timeout=30) as client:
        forged = client.post(url, content=body, headers=signed(body, key=forger))
        tampered = client.post(url, content=body + b" ", headers=signed(body))
        unsigned = client.post(url, content=body, headers={"Content-Type": "application/json"})
        unknown = client.post(f"{wayline_up.url}/v1/sources/nope/sendgrid", content=body)
        headers = signed(body)
        accepted = client.post(url, content=body, headers=headers)
        replayed = client.post(url, content=body, headers=headers)  # captured and sent again
        redelivered = client.post(url, content=body, headers=signed(body, str(int(time.time()))))
        stale = client.post(url, content=body, headers=signed(body, "1500000000"))  # 2017
        ahead = client.post(
            url, content=body, headers=signed(body, str(int(time.time()) + 10 * 365 * 86_400))
        )
    assert [r.status_code for r in (forged, tampered, unsigned)] == [401, 401, 401]
    for refused in (replayed, stale, ahead):
        assert (refused.status_code, refused.json()["code"]) == (401, "stale_or_replayed")
    assert "replay" in replayed.json()["message"]
    assert unknown.status_code == 404
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted"] == len(EXPECTED)
    assert redelivered.status_code == 200  # SendGrid's own redelivery: signed anew, deduped

    found = read_events(wayline_up.kafka, wayline_up.topics, len(EXPECTED), settle_s=1)
    events = sorted(found, key=lambda e: e["timestamp"])
    assert [(e["event"], e["identifiers"]["email"]) for e in events] == EXPECTED
    assert {e["context"]["channel"] for e in events} == {"email"}
    assert {e["source"] for e in events} == {"mail"}
    by_name = {e["event"]: e for e in events}
    assert by_name["Email Link Clicked"]["properties"]["url"] == "https://shop.example/sale"
    assert by_name["Email Marked as Spam"]["properties"]["consent"] == {"email": False}
    assert by_name["Unsubscribed"]["properties"]["consent"] == {"email": False}
    bounces = [e["properties"]["bounce_type"] for e in events if e["event"] == "Email Bounced"]
    assert bounces == ["blocked", "dropped"]
    assert events[0]["timestamp"] == "2025-11-23T12:00:00.000Z"
