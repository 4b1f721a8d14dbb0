"""Identity + profile fold: any order, duplicates, merges in any order → identical profiles."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wayline.profiles.book import ProfileBook
from wayline.profiles.identity import IdentityRules, MemoryGraph, resolve
from wayline.profiles.state import apply_event, empty_state, merge
from wayline.profiles.view import snapshot

NOW = 1_767_000_000_000
EVENTS = [
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Order Completed",
    "Signed Up",
    "Email Bounced",  # suppressions: last writer wins, an SMS START lifts a STOP
    "SMS Opted Out",
    "SMS Opted In",
]
CHANNELS = ["web", "app", "email", "store"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def customer_ids(c: int) -> list[tuple[str, str]]:
    """Customer c's identifiers: a user id, an e-mail, a phone, two anonymous ids."""
    return [
        ("user_id", f"u{c}"),
        ("email", f"c{c}@example.com"),
        ("phone", f"+4930901820{c:02d}"),
        ("anonymous_id", f"a{c}-1"),
        ("anonymous_id", f"a{c}-2"),
    ]


def make_event(i: int, customer: int, picks: list[int], kind: int, minute: int) -> dict[str, Any]:
    ids = customer_ids(customer)
    chosen = [ids[p % len(ids)] for p in picks]
    block: dict[str, Any] = {
        "user_id": None,
        "anonymous_id": None,
        "email": None,
        "phone": None,
        "device_id": None,
        "external": [],
    }
    for k, v in chosen:
        block[k] = v
    name = EVENTS[kind % len(EVENTS)]
    props: dict[str, Any] = {"product_id": f"sku-{(i + kind) % 4}", "category": f"cat{kind % 3}"}
    if name in ("Product Added", "Product Removed"):
        props |= {"quantity": 1 + kind % 2, "price": 10.0 + kind}
    if name == "Order Completed":
        props = {"order_id": f"o{customer}-{i % 3}", "revenue": 20.0 + i % 7}
    return {
        "type": "track" if kind % 6 else "identify",
        "event": name,
        "messageId": f"m{i}",
        "timestamp": (START + timedelta(minutes=minute)).isoformat(),
        "properties": props,
        "traits": {"plan": f"p{i % 3}", "$set_once": {"first_plan": f"p{i % 3}"}},
        "context": {
            "channel": CHANNELS[(i + kind) % 4],
            "traits": {"consent": {"email": kind % 2 == 0}, "city": f"c{i % 5}"},
        },
        "identifiers": block,
    }


event_args = st.tuples(
    st.integers(0, 3),  # customer
    st.lists(st.integers(0, 4), min_size=1, max_size=3),  # which of its identifiers
    st.integers(0, 11),  # kind
    st.integers(0, 40 * 1440),  # minute of the timeline
)


def profiles(events: list[dict[str, Any]]) -> dict[frozenset[tuple[str, str]], dict[str, Any]]:
    book = ProfileBook()
    for event in events:
        book.ingest(event)
    out = {}
    for pid, state in book.states.items():
        snap = snapshot(pid, state, NOW)
        del snap["merged_from"], snap["version"]  # the history of ids depends on the order
        key = frozenset((k, v) for k, vs in snap["identifiers"].items() for v in vs)
        out[key] = snap
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(event_args, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_any_order_with_duplicates_gives_identical_profiles(
    args: list[tuple[int, list[int], int, int]], rng: random.Random
) -> None:
    events = [make_event(i, *a) for i, a in enumerate(args)]
    reordered = events + [rng.choice(events) for _ in range(len(events) // 3)]
    rng.shuffle(reordered)
    expected = profiles(events)
    assert profiles(reordered) == expected
    assert sum(
        s["computed"]["event_counts"].get("Signed Up", {}).get("all_time", 0)
        for s in expected.values()
    ) == sum(1 for e in events if e["event"] == "Signed Up" and e["type"] == "track")


@settings(max_examples=150, deadline=None)
@given(st.lists(event_args, min_size=3, max_size=30), st.randoms(use_true_random=False))
def test_merge_is_commutative_and_associative(
    args: list[tuple[int, list[int], int, int]], rng: random.Random
) -> None:
    events = [make_event(i, *a) for i, a in enumerate(args)]
    parts: list[dict[str, Any]] = [empty_state(), empty_state(), empty_state()]
    whole = empty_state()
    for event in events:
        apply_event(whole, event, [])
        apply_event(parts[rng.randrange(3)], event, [])
        if rng.random() < 0.2:  # the same event also counted in another part
            apply_event(parts[rng.randrange(3)], event, [])
    a, b, c = parts
    left = merge(merge(a, b), c)
    right = merge(a, merge(c, b))
    assert snapshot("p", left, NOW) == snapshot("p", right, NOW) == snapshot("p", whole, NOW)
    for state in (whole, *parts, left, right):
        assert state["order_stats"] == order_stats_of(state["orders"])


def order_stats_of(orders: dict[str, list[Any]]) -> dict[str, Any]:
    """What the fold keeps of the orders, taken from the orders themselves."""
    times = [ts for ts, _revenue, _msgid in orders.values()]
    return {
        "n": len(orders),
        "micros": sum(round(revenue * 1_000_000) for _ts, revenue, _m in orders.values()),
        "first": min(times, default=None),
        "last": max(times, default=None),
    }


def test_grouping_is_order_independent_and_ids_are_deterministic() -> None:
    links = [
        [("anonymous_id", "a1"), ("user_id", "u1")],
        [("email", "e@x.io"), ("anonymous_id", "a1")],
        [("phone", "+4930901820999")],
        [("phone", "+4930901820999"), ("email", "e@x.io")],
    ]
    results = set()
    for seed in range(20):
        order = list(links)
        random.Random(seed).shuffle(order)
        graph = MemoryGraph()
        for idents in order:
            resolve(graph, IdentityRules(), idents)
        results.add((frozenset(graph.groups()), frozenset(graph.nodes)))
    assert len(results) == 1
    ((groups, ids),) = results
    assert len(groups) == 1
    assert len(ids) == 1


def test_junk_values_never_link() -> None:
    book = ProfileBook()
    for i, junk in enumerate(
        ["undefined", "null", "0", "-1", "anonymous", "guest", "[object Object]", " ", "None"]
    ):
        for user in ("u1", "u2"):
            event = make_event(i, 0, [0], 1, 10)
            event["messageId"] = f"{user}-{i}"
            event["identifiers"] |= {"user_id": user, "anonymous_id": junk}
            book.ingest(event)
    assert book.profile_of("user_id", "u1") != book.profile_of("user_id", "u2")
    refused = [e for e in book.log if e.kind == "refused"]
    assert len(refused) == 18
    assert all(e.reason.startswith("blocked value") and e.profile_id for e in refused)


def test_shared_tablet_does_not_merge_fifty_users() -> None:
    book = ProfileBook()
    for n in range(50):
        event = make_event(n, 0, [0], 1, n)
        event["identifiers"] |= {"user_id": f"u{n}", "device_id": "tablet-1", "anonymous_id": None}
        assert book.ingest(event) is not None
    assert len({book.profile_of("user_id", f"u{n}") for n in range(50)}) == 50
    refused = [e for e in book.log if e.kind == "refused"]
    assert len(refused) == 49
    assert all("limit: user_id 1 per profile" in e.reason for e in refused)
    assert sum(s["counts"]["Product Added"]["n"] for s in book.states.values()) == 50


def test_limit_refusal_keeps_event_on_its_profile() -> None:
    book = ProfileBook()
    for n in range(7):  # six e-mails can't all join one profile (limit 5)
        event = make_event(n, 0, [0], 1, n)
        event["identifiers"] |= {"user_id": "u1", "email": f"e{n}@x.io"}
        assert book.ingest(event) == book.profile_of("user_id", "u1")
    pid = book.profile_of("user_id", "u1")
    assert pid is not None
    assert len(book.states[pid]["ids"]["email"]) == 5
    assert book.states[pid]["counts"]["Product Added"]["n"] == 7
    assert [e.reason for e in book.log if e.kind == "refused"] == [
        "limit: email 5 per profile (link)"
    ] * 2
