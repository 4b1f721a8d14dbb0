"""The segment language as marketers write it: enter and exit at the right moments, clear errors."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_examples import EXAMPLE_SEGMENTS
from wayline.profiles.book import absorb
from wayline.profiles.state import apply_event, empty_state
from wayline.segments.compiler import SegmentDef, compile_segments
from wayline.segments.engine import after_change, after_merge, at_due, at_time, on_event
from wayline.segments.membership import Transition, transition_id, transition_ids
from wayline.segments.rules import RuleError
from wayline.segments.triggers import TriggerConfig

DAY = 86_400_000
OFF = TriggerConfig()  # no triggers: these tests are about segments
T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)

EXAMPLE = EXAMPLE_SEGMENTS


def defs(text: str) -> list[SegmentDef]:
    return [
        SegmentDef(s["name"], s["rule"], s.get("version", 1), s.get("notify", False))
        for s in yaml.safe_load(text)["segments"]
    ]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Shopper:
    """One profile's state, fed events and clock ticks like the profile worker does."""

    def __init__(self, text: str = EXAMPLE) -> None:
        self.compiled = compile_segments(defs(text))
        self.state = empty_state()
        self.seq = 0
        self.next_due: int | None = None

    def send(self, at: datetime, event: str, **props: Any) -> list[tuple[str, str]]:
        self.seq += 1
        body = {
            "type": "track",
            "event": event,
            "messageId": f"m{self.seq}",
            "timestamp": at.isoformat(),
            "properties": props,
            "context": {"channel": "web"},
        }
        _counted, result = on_event(
            self.compiled, OFF, self.state, body, [("user_id", "u1")], ms(at)
        )
        self.next_due = result.next_due
        return _pairs(result.transitions)

    def wake(self) -> tuple[int, list[tuple[str, str]]]:
        """The profile's timer fires at its due time, as in the worker."""
        assert self.next_due is not None, "the profile has no due time"
        at = self.next_due
        result = at_due(self.compiled, OFF, self.state, at)
        self.next_due = result.next_due
        return at, _pairs(result.transitions)

    def tick(self, at: datetime) -> list[tuple[str, str]]:
        result = at_time(self.compiled, OFF, self.state, ms(at))
        self.next_due = result.next_due
        return _pairs(result.transitions)


def _pairs(transitions: tuple[Transition, ...]) -> list[tuple[str, str]]:
    return [(t.segment, t.kind) for t in transitions]


def test_vip_enters_on_the_second_big_order_and_exits_when_the_window_passes() -> None:
    shopper = Shopper()
    assert shopper.send(T0, "Order Completed", order_id="o1", revenue=300.0) == []
    second = T0 + timedelta(days=10)
    assert shopper.send(second, "Order Completed", order_id="o2", revenue=250.0) == [
        ("vip", "enter")
    ]
    # the first order leaves the 90-day window on day 90: that is the next due time
    assert shopper.next_due == ms(T0 + timedelta(days=90))
    assert shopper.tick(T0 + timedelta(days=89)) == []
    assert shopper.tick(T0 + timedelta(days=90)) == [("vip", "exit")]
    assert shopper.state["segments"] == {}


def test_lapsed_shoe_buyer_enters_sixty_days_after_the_last_order() -> None:
    shopper = Shopper()
    products = [{"product_id": "SH-1", "category": "shoes"}]
    assert shopper.send(T0, "Order Completed", order_id="o1", revenue=80.0, category="shoes",
                        products=products) == []  # fmt: skip
    assert shopper.next_due == ms(T0 + timedelta(days=60))
    assert shopper.tick(T0 + timedelta(days=60)) == [("lapsed_shoe_buyers", "enter")]
    back = T0 + timedelta(days=70)
    assert shopper.send(back, "Order Completed", order_id="o2", revenue=20.0) == [
        ("lapsed_shoe_buyers", "exit")
    ]


def test_a_buyer_of_other_things_never_lapses_as_a_shoe_buyer() -> None:
    shopper = Shopper()
    shopper.send(T0, "Order Completed", order_id="o1", revenue=80.0, category="books")
    assert shopper.tick(T0 + timedelta(days=200)) == []


def test_recent_buyers_by_rfm_recency_exit_by_time_alone() -> None:
    shopper = Shopper("segments:\n  - {name: recent, rule: {computed.rfm.recency: {gte: 5}}}\n")
    assert shopper.send(T0, "Order Completed", order_id="o1", revenue=80.0) == [("recent", "enter")]
    # recency 5 lasts while the last order is at most 30 days old; no event comes after it
    assert shopper.wake() == (ms(T0) + 30 * DAY + 1, [("recent", "exit")])


def test_windowed_event_counts_exit_at_the_midnight_the_days_leave_the_window() -> None:
    rule = "{computed.event_counts.Product Viewed.7d: {gte: 2}}"
    shopper = Shopper(f"segments:\n  - {{name: browsing, rule: {rule}}}\n")
    shopper.send(T0, "Product Viewed", product_id="p1")
    assert shopper.send(T0 + timedelta(hours=1), "Product Viewed", product_id="p2") == [
        ("browsing", "enter")
    ]
    woken = []
    while (found := shopper.wake())[1] == []:
        woken.append(found[0])
    midnight = datetime(2026, 1, 2, tzinfo=UTC)
    assert woken == [ms(midnight + timedelta(days=d)) for d in range(6)]  # checked each midnight
    assert found == (ms(midnight + timedelta(days=6)), [("browsing", "exit")])  # day 1 + 7


def test_a_merge_shows_the_survivor_entering_what_it_now_holds() -> None:
    text = """
segments:
  - {name: buyer, notify: true, rule: {computed.order_count: {gte: 1}}}
  - {name: big, notify: true, rule: {computed.revenue: {gte: 100}}}
  - {name: repeat, notify: true, rule: {computed.order_count: {gte: 2}}}
  - {name: single, notify: true, rule: {computed.order_count: {eq: 1}}}
"""
    merged_away, survivor = Shopper(text), Shopper(text)
    merged_away.send(T0, "Order Completed", order_id="o1", revenue=150.0)  # buyer, big, single
    survivor.send(T0 + timedelta(hours=1), "Order Completed", order_id="o2", revenue=20.0)
    own = dict(survivor.state["segments"])  # buyer, single
    state = absorb(survivor.state, merged_away.state, "p_other")
    outcome = after_merge(survivor.compiled, OFF, state, own, ms(T0 + timedelta(hours=2)))
    # the stream of the survivor's id stays whole: it enters what it now holds, leaves what it
    # no longer holds; "big" is no news for the customer (they were in it under the other id)
    assert [(t.segment, t.kind, t.notify) for t in outcome.transitions] == [
        ("big", "enter", False),
        ("repeat", "enter", True),
        ("single", "exit", True),
    ]
    assert [(f.trigger, f.payload["segment"]) for f in outcome.fired] == [
        ("segment_entered", "repeat"),
        ("segment_exited", "single"),
    ]
    assert sorted(state["segments"]) == ["big", "buyer", "repeat"]


def test_a_segment_taken_out_of_the_definitions_is_left_with_an_exit() -> None:
    both = """
segments:
  - {name: buyer, rule: {computed.order_count: {gte: 1}}}
  - {name: big, notify: true, rule: {computed.revenue: {gte: 100}}}
"""
    fewer = compile_segments(defs(both.split("  - {name: big")[0]))
    later = ms(T0 + timedelta(hours=1))
    for reevaluate in ("changed only", "everything"):  # the worker knows the old ones, or not
        shopper = Shopper(both)
        assert shopper.send(T0, "Order Completed", order_id="o1", revenue=150.0) == [
            ("buyer", "enter"),
            ("big", "enter"),
        ]
        if reevaluate == "everything":
            outcome = at_time(fewer, OFF, shopper.state, later)
        else:
            outcome = after_change(fewer, OFF, shopper.state, later, set())
        assert [(t.segment, t.kind, t.version, t.at_ms) for t in outcome.transitions] == [
            ("big", "exit", 1, later)
        ], reevaluate
        assert outcome.fired == ()  # the segment is gone: no segment_exited trigger for it
        assert list(shopper.state["segments"]) == ["buyer"]


def test_an_event_evaluates_only_the_segments_it_can_flip() -> None:
    text = "segments:\n" + "".join(
        f"  - name: s{i}\n    rule: {{performed: {{event: Event {i}, at_least: 1}}}}\n"
        for i in range(1000)
    )
    shopper = Shopper(text)
    looked_at: list[str] = []
    for seg in shopper.compiled.segments:
        seg.check = _recording(seg.name, seg.check, looked_at)
    assert shopper.send(T0, "Event 7") == [("s7", "enter")]
    assert looked_at == ["s7"]
    assert shopper.send(T0 + timedelta(minutes=1), "Event 7") == []  # 1 → 2 crosses no threshold
    assert shopper.send(T0 + timedelta(minutes=2), "Page Viewed") == []
    assert looked_at == ["s7"]


def _recording(name: str, test: Any, log: list[str]) -> Any:
    def recorded(subject: Any) -> Any:
        log.append(name)
        return test(subject)

    return recorded


def test_in_segment_follows_its_dependency_and_cycles_are_refused() -> None:
    text = """
segments:
  - name: big_and_new
    rule: {all: [{in_segment: big}, {computed.order_count: {eq: 1}}]}
  - name: big
    rule: {computed.revenue: {gt: 100}}
"""
    shopper = Shopper(text)
    assert shopper.send(T0, "Order Completed", order_id="o1", revenue=150.0) == [
        ("big", "enter"),
        ("big_and_new", "enter"),
    ]
    cyclic = (
        "segments:\n  - {name: a, rule: {in_segment: b}}\n  - {name: b, rule: {in_segment: a}}\n"
    )
    with pytest.raises(RuleError, match=r"in_segment cycle: a → b → a"):
        compile_segments(defs(cyclic))


def test_birthday_today_in_the_customers_time_zone() -> None:
    text = "segments:\n  - {name: birthday, rule: {birthday_today: true}}\n"
    shopper = Shopper(text)
    identify = {"type": "identify", "messageId": "id1", "timestamp": T0.isoformat(),
                "traits": {"birthday": "1990-01-02", "timezone": "Pacific/Auckland"},
                "context": {"channel": "app", "timezone": "Pacific/Auckland"}}  # fmt: skip
    apply_event(shopper.state, identify, [])
    # 2026-01-01 12:00 UTC is already 2 January, 01:00 in Auckland
    assert _pairs(at_time(shopper.compiled, OFF, shopper.state, ms(T0)).transitions) == [
        ("birthday", "enter")
    ]
    assert shopper.tick(T0 + timedelta(hours=23)) == [("birthday", "exit")]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"computed.revenue": {"gte": 500}}, None),
        ({"all": []}, "segment 'bad': rule.all: expects a non-empty list of conditions"),
        ({"computed.revenue": {"greater": 5}}, "rule.computed.revenue.greater: unknown operator"),
        ({"all": [{"performed": {"event": "X", "within": "soon"}}]},
         "rule.all[0].performed.within: expects a duration such as 30d"),
        ({"not": {"performed": {"event": "X", "at_least": -1}}},
         "rule.not.performed.at_least: expects a whole number"),
        ({"revenue": {"gte": 5}}, "rule.revenue: unknown condition 'revenue'"),
        ({"any": [{"traits.age": {"between": [30]}}]},
         "rule.any[0].traits.age.between: expects [low, high] numbers"),
        ({"in_segment": "nope"}, "in_segment: unknown segment 'nope'"),
        ({"computed.revnue": {"gte": 500}}, "rule.computed.revnue.gte: unknown computed field"),
        ({"computed.revenue": {"gte": "lots"}}, "computed.revenue holds a number"),
        ({"lifecycle_stage": {"eq": "champion"}}, "use one of: awareness, consideration"),
        ({"lifecycle_stage": {"in": ["retention", "vip"]}}, "(got 'vip')"),
        ({"computed.rfm.recncy": {"gte": 3}}, "unknown RFM score; use one of: recency"),
        ({"computed.rfm.recency": {"gte": 7}}, "scores are 0 to 5"),
        ({"computed.cart.totl": {"gt": 10}}, "unknown cart field"),
        ({"computed.event_counts.Product Viewed.14d": {"gte": 1}}, "WINDOW one of"),
        ({"computed.order_count": {"contains": "x"}}, "holds a number: use eq, ne"),
        ({"computed.last_order_at": {"gte": "last week"}}, "compare it with an ISO time"),
        ({"consent.email": {"eq": "yes"}}, "consent.email holds true or false"),
        ({"computed.favorite_category": {"gt": 5}}, "holds text: use eq, ne, in"),
        ({"computed.cart": {"eq": 3}}, "computed.cart holds an object: use exists"),
        ({"computed.last_order_at": {"gte": "2026-01-01"}}, None),
        ({"computed.event_counts.Product Viewed.7d": {"gte": 3}}, None),
        ({"lifecycle_stage": {"in": ["retention", "advocacy"]}}, None),
        ({"computed.recently_viewed": {"contains": "sku-1"}}, None),
        ({"traits.anything.nested": {"eq": "x"}}, None),
    ],
)  # fmt: skip
def test_invalid_rules_name_the_segment_and_path(rule: dict[str, Any], message: str | None) -> None:
    if message is None:
        compile_segments([SegmentDef("bad", rule)])
        return
    with pytest.raises(RuleError) as caught:
        compile_segments([SegmentDef("bad", rule)])
    assert message in str(caught.value)
    assert str(caught.value).startswith("segment 'bad': ")


def test_comparisons() -> None:
    text = """
segments:
  - name: plan
    rule:
      all:
        - traits.plan: {in: [pro, team]}
        - traits.email: {exists: true}
        - traits.tags: {contains: beta}
        - consent.email: {ne: false}
        - lifecycle_stage: {eq: awareness}
"""
    shopper = Shopper(text)
    identify = {"type": "identify", "messageId": "i1", "timestamp": T0.isoformat(),
                "traits": {"plan": "pro", "email": "a@b.co", "tags": ["beta", "x"]},
                "context": {"channel": "web"}}  # fmt: skip
    _counted, result = on_event(shopper.compiled, OFF, shopper.state, identify, [], ms(T0))
    assert _pairs(result.transitions) == [("plan", "enter")]
    unsubscribed = T0 + timedelta(minutes=5)
    assert shopper.send(unsubscribed, "Unsubscribed") == [("plan", "exit")]


_SEGMENT_NAMES = st.text(min_size=1, max_size=12)
_TRANSITIONS = st.lists(
    st.builds(
        Transition,
        segment=_SEGMENT_NAMES,
        version=st.integers(1, 5),
        kind=st.sampled_from(["enter", "exit"]),
        at_ms=st.sampled_from([0, 1_764_000_000_000, 1_764_000_000_001, 253_402_300_799_999]),
        notify=st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(profile_id=st.text(min_size=1, max_size=40), transitions=_TRANSITIONS)
def test_transition_ids_are_the_hash_of_the_documented_text(
    profile_id: str, transitions: list[Transition]
) -> None:
    """The id a consumer of wayline.segments dedupes by: BLAKE2b-128 of segment, rule version,
    profile, kind and moment joined by US, whatever the segments hashed before (their kept
    hashes, dropped past a few thousand)."""
    expected = [
        hashlib.blake2b(
            f"{t.segment}\x1f{t.version}\x1f{profile_id}\x1f{t.kind}\x1f{t.at_ms}".encode(),
            digest_size=16,
        ).hexdigest()
        for t in transitions
    ]
    assert transition_ids(profile_id, transitions) == expected
    assert [transition_id(profile_id, t) for t in transitions] == expected


def test_transition_ids_hold_past_the_kept_hashes_of_thousands_of_segments() -> None:
    many = [Transition(f"s{i}", 1, "enter", 1_764_000_000_000, False) for i in range(20_000)]
    assert transition_ids("p1", many) == [transition_id("p1", t) for t in many]
    assert transition_ids("p1", many[:3]) == [transition_id("p1", t) for t in many[:3]]
