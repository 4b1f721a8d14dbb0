"""Customer journeys across web, app, e-mail and store, and the reference profiles they must give.

Shared by the pipeline and crash tests of the identity and profile workers.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from wayline.profiles.book import ProfileBook
from wayline.profiles.view import snapshot
from wayline.schemas.normalize import Origin, normalize_event

START = datetime(2026, 3, 1, 9, tzinfo=UTC)


def journey(c: int, rng: random.Random) -> list[dict[str, Any]]:
    anon, user, email, phone = f"anon-{c}", f"user-{c}", f"c{c}@example.com", f"+49301234{c:04d}"
    t = START + timedelta(minutes=rng.randrange(0, 600))
    plan_a, plan_b = rng.choice(["free", "plus"]), rng.choice(["pro", "team"])
    steps: list[tuple[str, dict[str, Any]]] = [
        ("web", {"type": "page", "anonymousId": anon, "name": "Home"}),
        ("web", {"type": "track", "anonymousId": anon, "event": "Product Viewed",
                 "properties": {"product_id": f"sku-{c % 7}", "category": "shoes"}}),
        ("app", {"type": "track", "userId": user, "anonymousId": anon, "event": "Signed In",
                 "context": {"traits": {"plan": plan_a}}}),
        ("email", {"type": "track", "event": "Email Link Clicked",
                   "context": {"traits": {"email": email}}}),
        ("store", {"type": "track", "event": "Order Completed",
                   "context": {"traits": {"phone": phone}},
                   "properties": {"order_id": f"o-{c}", "revenue": 10.0 + c}}),
        ("app", {"type": "identify", "userId": user,
                 "traits": {"email": email, "phone": phone, "plan": plan_b}}),
        ("web", {"type": "track", "anonymousId": anon, "event": "Product Added",
                 "properties": {"product_id": "sku-1", "price": 5.0}}),
    ]  # fmt: skip
    events = []
    for i, (channel, body) in enumerate(steps):
        t += timedelta(minutes=rng.randrange(1, 30))
        context = {**body.get("context", {}), "channel": channel}
        events.append({**body, "context": context, "messageId": f"m-{c}-{i}",
                       "timestamp": t.isoformat()})  # fmt: skip
    return events


def raw_key(event: dict[str, Any]) -> bytes:
    context = event.get("context", {})
    traits = context.get("traits", {})
    key = event.get("userId") or event.get("anonymousId") or traits.get("email") or traits["phone"]
    return str(key).encode()


def shuffled_and_duplicated(
    events: list[dict[str, Any]], rng: random.Random
) -> list[dict[str, Any]]:
    """10 % of events moved to a random place within 10 minutes of event time; 5 % sent twice."""
    ordered = sorted(events, key=lambda e: e["timestamp"])
    moved = rng.sample(range(len(ordered)), len(ordered) // 10)
    keyed = []
    for i, event in enumerate(ordered):
        when = datetime.fromisoformat(event["timestamp"])
        if i in moved:
            when += timedelta(seconds=rng.randrange(-600, 600))
        keyed.append((when, i, event))
    out = [e for _, _, e in sorted(keyed, key=lambda k: (k[0], k[1]))]
    for event in rng.sample(events, len(events) // 20):
        out.insert(rng.randrange(len(out)), event)
    return out


def canonical(event: dict[str, Any]) -> dict[str, Any]:
    origin = Origin(datetime.fromisoformat(event["timestamp"]), event["messageId"])
    return normalize_event(orjson.loads(orjson.dumps(event)), origin)


def visible(doc: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on arrival order in live mode (not the version, the history of ids,
    or the moment the document is as of — wall time when live — and the windowed counts and RFM
    computed for it)."""
    computed = dict(doc["computed"])
    computed["event_counts"] = {n: c["all_time"] for n, c in computed["event_counts"].items()}
    del computed["rfm"], computed["as_of"]
    out = {k: v for k, v in doc.items() if k not in ("version", "merged_from", "activity")}
    out["computed"] = computed
    return out


def reference(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Profile id → visible profile, from ``ProfileBook`` over the clean log in time order."""
    book = ProfileBook()
    for event in sorted(events, key=lambda e: e["timestamp"]):
        book.ingest(canonical(event))
    now = max(int(datetime.fromisoformat(e["timestamp"]).timestamp() * 1000) for e in events)
    return {pid: visible(snapshot(pid, s, now)) for pid, s in book.states.items()}


def journeys(customers: int, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [e for c in range(customers) for e in journey(c, rng)]
