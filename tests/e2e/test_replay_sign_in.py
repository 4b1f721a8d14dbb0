"""The most common journey, sent as a new user would: plain HTTP to ``/v1/batch`` of
``wayline up`` with ``clock: replay``. Browse anonymously, fill a cart, sign in, add to the same
cart — the abandoned-cart trigger carries the whole cart; a guest's first order counts once
after signing in; the profile API answers as of the request time."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from kafkatest import read_topic, wait_for
from shoppers import sign_in_journey
from waylineproc import API_KEY, Running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_a_sign_in_sent_over_http_keeps_the_whole_cart(wayline_up_replay: Running) -> None:
    running = wayline_up_replay
    with httpx.Client(base_url=running.url, auth=("wk_web_e2e_1", ""), timeout=30) as client:
        reply = client.post("/v1/batch", json={"batch": sign_in_journey()})
    assert reply.status_code == 200, reply.text

    def triggers() -> list[dict[str, Any]]:
        found = read_topic(running.kafka, running.topics.triggers, expect=0)
        return [orjson.loads(m.value or b"") for m in found]

    wait_for(lambda: len({t["id"] for t in triggers()}) >= 4, 90, "the triggers")
    fired = {str(t["id"]): t for t in triggers()}.values()
    carts = [t["data"] for t in fired if t["type"] == "wayline.trigger.cart_abandoned"]
    (cart,) = [d["payload"] for d in carts]
    assert sorted(i["product_id"] for i in cart["items"]) == ["p1", "p2", "p3"]
    assert cart["value"] == 125.0
    milestones = sorted(t["data"]["occasion"] for t in fired if t["data"]["trigger"] == "milestone")
    assert milestones == ["orders:1", "orders:2"]
    entered = [t for t in fired if t["data"]["trigger"] == "segment_entered"]
    assert len(entered) == 1

    with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {API_KEY}"}) as api:
        doc = api.get("/v1/profiles/user_id/user-A").json()
        assert (
            doc["computed"]["as_of"] == "2026-03-02T11:35:00.000Z"
        )  # the cart trigger, its last change
        assert doc["computed"]["event_counts"]["Product Viewed"]["7d"] == 3
        now = api.get("/v1/profiles/user_id/user-A", params={"at": "now"}).json()
        assert now["computed"]["event_counts"]["Product Viewed"] == {
            "all_time": 3, "7d": 0, "30d": 0, "90d": 0
        }  # fmt: skip
        bad = api.get("/v1/profiles/user_id/user-A", params={"at": "yesterday"})
        assert (bad.status_code, bad.json()["code"]) == (400, "invalid_at")
