"""Triggers as a marketer expects them: once per occasion, at the right moment, never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from wayline.profiles.state import empty_state, merge
from wayline.segments.compiler import compile_segments
from wayline.segments.engine import Outcome, at_time, on_event
from wayline.segments.triggers import TriggerConfig, cloud_event

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
CONFIG = TriggerConfig.from_mapping(
    {
        "cart_abandoned": {"after": "60m"},
        "browse_abandoned": {"views": 2, "after": "4h"},
        "churn_risk": {"factor": 2.0, "min_orders": 3, "floor": "14d"},
        "milestones": {"orders": [1, 3, 10], "revenue": [100, 1000]},
    }
)
NO_SEGMENTS = compile_segments([])


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Profile:
    def __init__(self) -> None:
        self.state = empty_state()
        self.sent: list[dict[str, Any]] = []
        self.next_due: int | None = None

    def send(self, at: datetime, event: str, msgid: str | None = None, **props: Any) -> list[str]:
        body = {
            "type": "track",
            "event": event,
            "messageId": msgid or f"m{len(self.sent)}",
            "timestamp": at.isoformat(),
            "properties": props,
            "context": {"channel": "web"},
        }
        self.sent.append(body)
        _counted, outcome = on_event(
            NO_SEGMENTS, CONFIG, self.state, body, [("user_id", "u1")], ms(at)
        )
        return self._names(outcome)

    def tick(self, at: datetime) -> list[str]:
        return self._names(at_time(NO_SEGMENTS, CONFIG, self.state, ms(at)))

    def _names(self, outcome: Outcome) -> list[str]:
        self.next_due = outcome.next_due
        self.last = outcome
        return [f"{f.trigger}:{f.occasion.split('@')[0]}" for f in outcome.fired]


def add(profile: Profile, at: datetime, sku: str, price: float) -> list[str]:
    return profile.send(at, "Product Added", product_id=sku, price=price, cart_id="c1")


def test_two_items_and_gone_gives_exactly_one_cart_abandoned_with_both() -> None:
    shopper = Profile()
    add(shopper, T0, "SH-1", 50.0)
    add(shopper, T0 + timedelta(minutes=5), "SH-2", 30.0)
    assert shopper.next_due == ms(T0 + timedelta(minutes=65))
    assert shopper.tick(T0 + timedelta(minutes=64)) == []
    assert shopper.tick(T0 + timedelta(minutes=65)) == ["cart_abandoned:cart"]
    (fired,) = shopper.last.fired
    assert fired.payload["cart_id"] == "c1"
    assert sorted(i["product_id"] for i in fired.payload["items"]) == ["SH-1", "SH-2"]
    assert fired.payload["value"] == 80.0
    assert shopper.tick(T0 + timedelta(hours=5)) == []  # once per occasion


def test_buying_within_the_window_fires_nothing() -> None:
    shopper = Profile()
    add(shopper, T0, "SH-1", 50.0)
    shopper.send(T0 + timedelta(minutes=20), "Order Completed", order_id="o1", revenue=50.0)
    assert shopper.tick(T0 + timedelta(hours=3)) == []


def test_coming_back_restarts_the_timer() -> None:
    shopper = Profile()
    add(shopper, T0, "SH-1", 50.0)
    back = T0 + timedelta(minutes=50)
    add(shopper, back, "SH-3", 10.0)
    assert shopper.tick(T0 + timedelta(minutes=61)) == []
    assert shopper.next_due == ms(back + timedelta(minutes=60))
    assert shopper.tick(back + timedelta(minutes=60)) == ["cart_abandoned:cart"]


def test_churn_risk_fires_once_at_twice_the_own_rhythm() -> None:
    shopper = Profile()
    for i in range(4):  # an order every 10 days
        shopper.send(T0 + timedelta(days=10 * i), "Order Completed", order_id=f"o{i}", revenue=20.0)
    last = T0 + timedelta(days=30)
    assert shopper.next_due == ms(last + timedelta(days=20))  # 2 × 10 days ≥ the 14-day floor
    assert shopper.tick(last + timedelta(days=19)) == []
    assert shopper.tick(last + timedelta(days=20)) == ["churn_risk:after-order"]
    (fired,) = shopper.last.fired
    assert fired.reason["expected_gap_days"] == 20.0
    assert fired.payload["ltv"] == 80.0
    assert shopper.tick(last + timedelta(days=40)) == []


def test_milestones_fire_once_and_never_again_on_re_send() -> None:
    shopper = Profile()
    got = []
    for i in range(3):
        got += shopper.send(T0 + timedelta(days=i), "Order Completed", order_id=f"o{i}",
                            revenue=40.0)  # fmt: skip
    assert got == ["milestone:orders:1", "milestone:orders:3", "milestone:revenue:100"]
    for event in list(shopper.sent):  # the same events again
        counted, outcome = on_event(NO_SEGMENTS, CONFIG, shopper.state, event, [], ms(T0))
        assert not counted
        assert outcome.fired == ()


def test_browse_abandoned_needs_two_views_and_no_add() -> None:
    shopper = Profile()
    shopper.send(T0, "Product Viewed", product_id="SH-9")
    shopper.send(T0 + timedelta(minutes=3), "Product Viewed", product_id="SH-9")
    shopper.send(T0 + timedelta(minutes=4), "Product Viewed", product_id="SH-8")
    assert shopper.tick(T0 + timedelta(hours=4, minutes=3)) == ["browse_abandoned:SH-9"]
    other = Profile()
    other.send(T0, "Product Viewed", product_id="SH-9")
    other.send(T0 + timedelta(minutes=1), "Product Viewed", product_id="SH-9")
    add(other, T0 + timedelta(minutes=2), "SH-9", 5.0)
    assert [n for n in other.tick(T0 + timedelta(hours=5)) if "browse" in n] == []


def test_a_merge_does_not_fire_a_milestone_twice() -> None:
    a, b = Profile(), Profile()
    a.send(T0, "Order Completed", order_id="o1", revenue=10.0)
    b.send(T0 + timedelta(hours=1), "Order Completed", order_id="o2", revenue=10.0)
    merged = merge(a.state, b.state)
    outcome = at_time(NO_SEGMENTS, CONFIG, merged, ms(T0 + timedelta(hours=2)))
    assert [f.occasion for f in outcome.fired] == []  # orders:1 fired on both sides already


def test_cloud_event_ids_are_deterministic() -> None:
    shopper = Profile()
    shopper.send(T0, "Order Completed", order_id="o1", revenue=10.0)
    (fired,) = shopper.last.fired
    doc = cloud_event(fired, 1, "p1", {"user_id": ["u1"]})
    again = cloud_event(fired, 1, "p1", {"user_id": ["u1"]})
    assert doc["id"] == again["id"]
    assert doc["id"] != cloud_event(fired, 2, "p1", {})["id"]
    assert doc["type"] == "wayline.trigger.milestone"
    assert doc["subject"] == "p1"
    assert set(doc["data"]) >= {"profile_id", "identifiers", "trigger", "rule_version", "reason",
                                "payload"}  # fmt: skip
