"""One shopper across web, app, e-mail and store becomes ONE profile, counted exactly once.

Web and app events come from the unmodified segment-analytics-python client, the e-mail click
from a signed SendGrid webhook (it carries only the address), the store order from
``wayline import orders`` (only the phone number). The final identify links them all.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics import Client as SegmentClient

from waylineproc import API_KEY, Running, signed

pytestmark = pytest.mark.e2e

ANON, USER, DEVICE = "anon-omni-1", "u-omni-1", "dev-omni-1"
EMAIL, PHONE = "omni@example.com", "+4915112345678"


def lookup(running: Running, path: str, key: str = API_KEY) -> httpx.Response:
    return httpx.get(
        f"{running.url}/v1/profiles/{path}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def wait_profile(running: Running, path: str, ready: Any, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        last = lookup(running, path)
        if last.status_code == 200 and ready(last.json()):
            return dict(last.json())
        time.sleep(0.3)
    raise AssertionError(
        f"{path}: not ready: {last.status_code if last else None} {last and last.text}"
    )


def counts(doc: dict[str, Any]) -> dict[str, int]:
    return {name: row["all_time"] for name, row in doc["computed"]["event_counts"].items()}


def client(key: str, url: str) -> SegmentClient:
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    return SegmentClient(key, host=url, gzip=True, sync_mode=True)


def test_omnichannel_story_ends_in_one_profile(wayline_up: Running, tmp_path: Path) -> None:
    web = client("wk_web_e2e_1", wayline_up.url)
    web.page(anonymous_id=ANON, name="Home")
    web.track(anonymous_id=ANON, event="Product Viewed", properties={"product_id": "SH-1"})
    web.track(anonymous_id=ANON, event="Product Viewed", properties={"product_id": "SH-2"})
    anon = wait_profile(wayline_up, f"anonymous_id/{ANON}", lambda d: len(counts(d)) == 2)

    app = client("wk_app_e2e_1", wayline_up.url)
    device = {"device": {"id": DEVICE}, "app": {"name": "Shop"}}
    app.track(user_id=USER, anonymous_id=ANON, event="Signed In", context=device)
    app.track(user_id=USER, event="Product Added", properties={"product_id": "SH-2", "price": 59.0})
    known = wait_profile(wayline_up, f"user_id/{USER}", lambda d: "Product Added" in counts(d))
    assert anon["profile_id"] in known["merged_from"]  # the anonymous profile was renamed

    now = int(time.time())
    click = [{"email": EMAIL, "timestamp": now, "event": "click", "sg_event_id": "sg-omni-1",
              "sg_message_id": "m-omni.filter", "url": "https://shop.example/sale"}]  # fmt: skip
    body = json.dumps(click).encode()
    reply = httpx.post(
        f"{wayline_up.url}/v1/sources/mail/sendgrid", content=body, headers=signed(body)
    )
    assert reply.status_code == 200, reply.text
    by_email = wait_profile(wayline_up, f"email/{EMAIL}", lambda d: True)
    assert by_email["profile_id"] != known["profile_id"]  # nothing links them yet

    orders = tmp_path / "orders.csv"
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1))  # after the cart add
    items = json.dumps([{"sku": "SH-2", "quantity": 1, "price": 59.0, "category": "shoes"}])
    with orders.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "time", "store_id", "total", "currency", "items", "phone"])
        writer.writerow(["o-omni-1", moment, "st-1", "59.0", "EUR", items, PHONE])
    printed = wayline_up.cli("import", "orders", str(orders), "--source", "pos")
    assert re.search(r"accepted\W+1\b", printed), printed
    by_phone = wait_profile(wayline_up, f"phone/{PHONE}", lambda d: True)
    assert by_phone["computed"]["order_count"] == 1

    web.identify(user_id=USER, traits={"email": EMAIL, "phone": PHONE, "first_name": "Omni"})
    final = wait_profile(
        wayline_up, f"user_id/{USER}", lambda d: counts(d).get("Order Completed") == 1
    )

    paths = [f"user_id/{USER}", f"anonymous_id/{ANON}", f"email/{EMAIL}", f"phone/{PHONE}",
             f"device_id/{DEVICE}", final["profile_id"]]  # fmt: skip
    docs = [wait_profile(wayline_up, p, lambda d: d["version"] == final["version"]) for p in paths]
    assert {d["profile_id"] for d in docs} == {final["profile_id"]}
    assert {by_email["profile_id"], by_phone["profile_id"]} <= set(final["merged_from"])

    assert counts(final) == {
        "Page Viewed": 1,
        "Product Viewed": 2,
        "Signed In": 1,
        "Product Added": 1,
        "Email Link Clicked": 1,
        "Order Completed": 1,
        "Identify": 1,
    }
    assert set(final["channels"]) == {"web", "app", "email", "store"}
    for seen in final["channels"].values():
        assert seen["first_seen"] <= seen["last_seen"]
    assert final["identifiers"] == {
        "anonymous_id": [ANON],
        "device_id": [DEVICE],
        "email": [EMAIL],
        "phone": [PHONE],
        "user_id": [USER],
    }
    computed = final["computed"]
    assert (computed["order_count"], computed["revenue"]) == (1, 59.0)
    assert computed["lifecycle_stage"] == "conversion"
    assert computed["cart"] is None  # the order emptied the cart
    assert final["traits"]["first_name"] == "Omni"
    assert set(final) >= {"profile_id", "identifiers", "traits", "computed", "channels",
                          "consent", "segments", "merged_from"}  # fmt: skip


def test_profile_api_statuses(wayline_up: Running) -> None:
    assert lookup(wayline_up, "user_id/nobody").status_code == 404
    assert lookup(wayline_up, "p_00000000000000000000").status_code == 404
    assert lookup(wayline_up, "user_id/nobody", key="ak_wrong_key_1").status_code == 401
    assert httpx.get(f"{wayline_up.url}/v1/profiles/user_id/nobody").status_code == 401
