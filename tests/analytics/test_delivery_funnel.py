"""The delivery funnel per subscription (sent, delivered, opened, clicked, unsubscribed) and the
global uplift against the control group, from the analytics tables, each equal to an
independent walk over the same generated deliveries and events."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from warehousetest import insert_docs
from wayline.connectors.clickhouse import Client
from wayline.connectors.kpis import delivery_funnel, uplift_arms

pytestmark = pytest.mark.timeout(180)
START = datetime(2026, 10, 1, tzinfo=UTC)
UNTIL = START + timedelta(days=20)
SUBSCRIPTIONS = {
    "cart-mail": "email",
    "winback-mail": "email",
    "cart-sms": "sms",
    "hook": "webhook",
}
ENGAGEMENT = {"Email Delivered": "email", "Email Opened": "email", "Email Link Clicked": "email",
              "Unsubscribed": "email", "SMS Opted Out": "sms"}  # fmt: skip
STEP = {"Email Delivered": "delivered", "Email Opened": "opened", "Email Link Clicked": "clicked",
        "Unsubscribed": "unsubscribed", "SMS Opted Out": "unsubscribed"}  # fmt: skip


def generate(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    deliveries: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for p in range(400):
        pid = f"p{p}"
        for n in range(rng.randint(0, 5)):
            sub = rng.choice(list(SUBSCRIPTIONS))
            at = START + timedelta(minutes=rng.randint(-3 * 1440, 22 * 1440))
            status = rng.choice(["sent", "sent", "delivered", "held_out", "suppressed", "failed"])
            reason = rng.choice(["holdout", "control_group"]) if status == "held_out" else "ok"
            deliveries.append({"profile_id": pid, "delivery_id": f"{pid}-d{n}",
                               "trigger_id": f"{pid}-t{n}", "trigger": "cart_abandoned",
                               "subscription": sub, "channel": sub,
                               "channel_type": SUBSCRIPTIONS[sub], "kind": "marketing",
                               "status": status, "final": True, "reason": reason, "attempt": 1,
                               "at": at.isoformat()})  # fmt: skip
        for n in range(rng.randint(0, 8)):
            name = rng.choice([*ENGAGEMENT, "Order Completed"])
            at = START + timedelta(minutes=rng.randint(-2 * 1440, 30 * 1440))
            props = (
                {"order_id": f"{pid}-o{n}", "revenue": 20.0} if name == "Order Completed" else {}
            )
            events.append({"profile_id": pid, "messageId": f"{pid}-e{n}", "type": "track",
                           "event": name, "timestamp": at.isoformat(),
                           "receivedAt": at.isoformat(), "context": {"channel": "email"},
                           "properties": props})  # fmt: skip
    return deliveries, events


def load(client: Client, database: str, seed: int) -> tuple[list[Any], list[Any]]:
    deliveries, events = generate(seed)
    for table, docs in (("deliveries", deliveries), ("events.resolved", events)):
        insert_docs(client, database, table, docs, again_every=5)  # replayed copies too
    return deliveries, events


def walk_funnel(deliveries: list[Any], events: list[Any]) -> dict[str, dict[str, int]]:
    def t(doc: dict[str, Any], key: str) -> datetime:
        return datetime.fromisoformat(doc[key])

    reached = [d for d in deliveries
               if d["status"] in ("sent", "delivered") and START <= t(d, "at") < UNTIL]  # fmt: skip
    out: dict[str, dict[str, int]] = {}
    for d in reached:
        steps = out.setdefault(d["subscription"], dict.fromkeys(
            ("sent", "delivered", "opened", "clicked", "unsubscribed"), 0))  # fmt: skip
        steps["sent"] += 1
        steps["delivered"] += d["status"] == "delivered"
    credited: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in events:
        if e["event"] not in ENGAGEMENT or t(e, "timestamp") < START:
            continue
        before = [d for d in reached if d["profile_id"] == e["profile_id"]
                  and d["channel_type"] == ENGAGEMENT[e["event"]]
                  and t(d, "at") <= t(e, "timestamp")]  # fmt: skip
        if not before:
            continue
        latest = max(before, key=lambda d: t(d, "at"))
        if t(e, "timestamp") >= t(latest, "at") + timedelta(days=7):
            continue
        step = STEP[e["event"]]
        if step == "delivered" and latest["status"] == "delivered":
            continue  # confirmed by the connector already
        credited[(latest["subscription"], step)].add(latest["delivery_id"])
    for (sub, step), ids in credited.items():
        out[sub][step] += len(ids)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_delivery_funnel_equals_a_walk(migrated: tuple[Client, str], seed: int) -> None:
    client, database = migrated
    deliveries, events = load(client, database, seed)
    expected = walk_funnel(deliveries, events)
    found = delivery_funnel(client, database, START, UNTIL)
    assert found == expected
    assert found["hook"]["opened"] == 0  # a webhook is not opened
    assert found["cart-mail"]["opened"] > 0
    assert found["cart-sms"]["unsubscribed"] > 0


def test_global_uplift_arms_equal_a_walk(migrated: tuple[Client, str]) -> None:
    client, database = migrated
    deliveries, events = load(client, database, 3)
    first: dict[tuple[str, bool], datetime] = {}
    for d in deliveries:
        at = datetime.fromisoformat(d["at"])
        if not START <= at < UNTIL:
            continue
        if d["status"] in ("sent", "delivered"):
            arm = False
        elif d["status"] == "held_out" and d["reason"] == "control_group":
            arm = True
        else:
            continue
        key = (d["profile_id"], arm)
        first[key] = min(first.get(key, at), at)
    orders = [(e["profile_id"], datetime.fromisoformat(e["timestamp"]))
              for e in events if e["event"] == "Order Completed"]  # fmt: skip
    expected = {False: [0, 0], True: [0, 0]}
    for (pid, arm), t0 in first.items():
        expected[arm][0] += 1
        expected[arm][1] += any(p == pid and t0 < at <= t0 + timedelta(days=7) for p, at in orders)
    treated, held = uplift_arms(client, database, None, 7, START, UNTIL)
    assert [treated.profiles, treated.converted] == expected[False]
    assert [held.profiles, held.converted] == expected[True]
    assert held.profiles > 0
    assert treated.profiles > held.profiles
