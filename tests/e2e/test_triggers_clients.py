"""Triggers a marketer expects, from events sent by the unmodified segment-analytics-python
client through the collector."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import pytest
from segment.analytics import Client as SegmentClient

from kafkatest import read_topic
from waylineproc import Running

pytestmark = pytest.mark.e2e


def triggers_of(running: Running, expect: int) -> list[dict[str, Any]]:
    found = read_topic(running.kafka, running.topics.triggers, expect=expect, timeout_s=60,
                       settle_s=2)  # fmt: skip
    return [orjson.loads(m.value or b"") for m in found]


def test_cart_abandonment_milestones_and_vip_through_the_collector(
    wayline_up_with_triggers: Running,
) -> None:
    running = wayline_up_with_triggers
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    web = SegmentClient("wk_web_e2e_1", host=running.url, gzip=True, sync_mode=True)

    def add(user: str, sku: str, price: float) -> None:
        props = {"product_id": sku, "price": price, "cart_id": f"cart-{user}"}
        web.track(user_id=user, event="Product Added", properties=props)

    def buy(user: str, order: str, revenue: float, message_id: str | None = None) -> None:
        props = {"order_id": order, "revenue": revenue, "cart_id": f"cart-{user}"}
        web.track(user_id=user, event="Order Completed", message_id=message_id, properties=props)

    add("leaver", "SH-1", 60.0)
    add("leaver", "SO-2", 9.0)
    add("buyer", "SH-1", 60.0)
    buy("buyer", "b-1", 60.0)
    add("returner", "SH-1", 60.0)
    time.sleep(2)
    add("returner", "SO-2", 9.0)  # back within the window: the timer restarts
    for n, revenue in enumerate([40.0, 250.0, 300.0]):  # crosses 100, then the 3rd order
        buy("loyal", f"l-{n}", revenue, message_id=f"loyal-order-{n}")
    buy("loyal", "l-2", 300.0, message_id="loyal-order-2")  # the same event re-sent
    time.sleep(7)

    docs = triggers_of(running, expect=5)
    got = sorted((d["data"]["identifiers"]["user_id"][0], d["type"].rsplit(".", 1)[1],
                  d["data"]["occasion"].split("@")[0]) for d in docs)  # fmt: skip
    assert got == [
        ("leaver", "cart_abandoned", "cart"),
        ("loyal", "milestone", "orders:3"),
        ("loyal", "milestone", "revenue:100"),
        ("loyal", "segment_entered", "vip"),
        ("returner", "cart_abandoned", "cart"),
    ]  # the buyer bought in time; the re-sent order fired nothing
    carts = {d["data"]["identifiers"]["user_id"][0]: d["data"]["payload"] for d in docs
             if d["type"] == "wayline.trigger.cart_abandoned"}  # fmt: skip
    assert sorted(i["product_id"] for i in carts["leaver"]["items"]) == ["SH-1", "SO-2"]
    assert carts["leaver"]["value"] == 69.0
    assert sorted(i["product_id"] for i in carts["returner"]["items"]) == ["SH-1", "SO-2"]
