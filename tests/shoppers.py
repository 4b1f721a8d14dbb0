"""Omnichannel customers over months, for comparing the live pipeline with the dry run.

Each customer browses anonymously (one or two devices), fills carts, opens and clicks e-mails
that carry only the address, signs in (merging the anonymous and e-mail profiles into one),
orders on the web or as a guest in the store, and sometimes unsubscribes — the journeys where a
profile's history is spread over several ids until identity joins them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 1, 5, 8, tzinfo=UTC)
PRODUCTS = [
    (f"p{i}", ("shoes", "outdoor", "kitchen", "books")[i % 4], 15.0 + 7 * i) for i in range(12)
]


class _Customer:
    def __init__(self, c: int, rng: random.Random) -> None:
        self.c, self.rng = c, rng
        self.devices = [f"anon-{c}-{d}" for d in range(rng.choice((1, 1, 2)))]
        self.user, self.email = f"user-{c}", f"c{c}@shop.example"
        self.signed_in = False
        self.t = START + timedelta(minutes=rng.randrange(0, 60 * 24 * 20))
        self.events: list[dict[str, Any]] = []
        self.orders = 0

    def add(self, body: dict[str, Any], channel: str, minutes: tuple[int, int] = (1, 12)) -> None:
        self.t += timedelta(minutes=self.rng.randrange(*minutes), seconds=self.rng.randrange(60))
        context = {**body.pop("context", {}), "channel": channel}
        self.events.append({**body, "context": context, "timestamp": self.t.isoformat(),
                            "messageId": f"m-{self.c}-{len(self.events)}"})  # fmt: skip

    def who(self) -> dict[str, Any]:
        device = self.rng.choice(self.devices)
        return (
            {"anonymousId": device, "userId": self.user}
            if self.signed_in
            else {"anonymousId": device}
        )

    def browse(self) -> None:
        self.add({"type": "page", "name": "Home", **self.who()}, "web")
        for _ in range(self.rng.randrange(1, 4)):
            pid, category, price = self.rng.choice(PRODUCTS)
            props = {"product_id": pid, "category": category, "price": price}
            self.add({"type": "track", "event": "Product Viewed", "properties": props,
                      **self.who()}, "web")  # fmt: skip

    def cart(self, cart_id: str) -> None:
        for _ in range(self.rng.randrange(1, 3)):
            pid, _category, price = self.rng.choice(PRODUCTS)
            props = {"cart_id": cart_id, "product_id": pid, "price": price, "quantity": 1}
            self.add({"type": "track", "event": "Product Added", "properties": props,
                      **self.who()}, "web")  # fmt: skip

    def mail(self) -> None:
        name = self.rng.choice(("Email Opened", "Email Opened", "Email Link Clicked"))
        self.add({"type": "track", "event": name, "context": {"traits": {"email": self.email}},
                  "properties": {"campaign": "weekly"}}, "email", (30, 600))  # fmt: skip

    def sign_in(self) -> None:
        self.signed_in = True
        traits = {"email": self.email, "plan": self.rng.choice(("free", "plus"))}
        self.add({"type": "identify", "userId": self.user, "anonymousId": self.devices[0],
                  "traits": traits}, "web", (20, 40))  # fmt: skip

    def order(self, guest: bool = False) -> None:
        self.orders += 1
        revenue = round(self.rng.uniform(20, 180), 2)
        props = {"order_id": f"o-{self.c}-{self.orders}", "revenue": revenue}
        if guest:  # at the till, with only the e-mail address
            body = {"type": "track", "event": "Order Completed", "properties": props,
                    "context": {"traits": {"email": self.email}}}  # fmt: skip
            self.add(body, "store")
        else:
            self.add({"type": "track", "event": "Order Completed", "properties": props,
                      **self.who()}, "web")  # fmt: skip

    def gap(self) -> None:
        self.t += timedelta(hours=self.rng.choice((2, 20, 50, 150, 400, 900)))


def customer(c: int, rng: random.Random) -> list[dict[str, Any]]:
    who = _Customer(c, rng)
    sessions = rng.randrange(4, 10)
    sign_in_at = rng.randrange(1, 4)
    for s in range(sessions):
        roll = rng.random()
        if roll < 0.25:
            who.mail()
        who.browse()
        if rng.random() < 0.5:
            who.cart(f"cart-{c}-{s}")
        if s == sign_in_at:
            who.sign_in()
            if rng.random() < 0.6:
                who.browse()
        if roll > 0.55 and (who.signed_in or rng.random() < 0.3):
            who.order(guest=rng.random() < 0.25)
        if rng.random() < 0.04:
            who.add({"type": "track", "event": "Unsubscribed", "properties": {"channel": "email"},
                     "context": {"traits": {"email": who.email}}}, "email")  # fmt: skip
        who.gap()
    return who.events


def shoppers(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = [e for c in range(count) for e in customer(c, rng)]
    return sorted(events, key=lambda e: e["timestamp"])


def sign_in_journey() -> list[dict[str, Any]]:
    """Browse anonymously, fill a cart, sign in 30 minutes later, add to the same cart; a guest
    who orders in the store, signs in the next day and orders again 5 minutes later."""
    t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)

    def at(minutes: float) -> str:
        return (t0 + timedelta(minutes=minutes)).isoformat()

    def view(mid: str, minutes: float, product: str, **who: str) -> dict[str, Any]:
        props = {"product_id": product, "category": "shoes", "price": 10.0}
        return {"type": "track", "event": "Product Viewed", "messageId": mid,
                "timestamp": at(minutes), "properties": props, **who}  # fmt: skip

    def add(mid: str, minutes: float, product: str, price: float, **who: str) -> dict[str, Any]:
        props = {"cart_id": "cart-A", "product_id": product, "price": price, "quantity": 1}
        return {"type": "track", "event": "Product Added", "messageId": mid,
                "timestamp": at(minutes), "properties": props, **who}  # fmt: skip

    def order(mid: str, minutes: float, **who: Any) -> dict[str, Any]:
        return {"type": "track", "event": "Order Completed", "messageId": mid,
                "timestamp": at(minutes), "properties": {"order_id": mid, "revenue": 30.0},
                **who}  # fmt: skip

    anon = {"anonymousId": "anon-A"}
    return [
        view("a1", 0, "p1", **anon),
        view("a2", 1, "p2", **anon),
        add("a3", 2, "p1", 40.0, **anon),
        add("a4", 3, "p2", 60.0, **anon),
        {
            "type": "identify",
            "messageId": "a5",
            "timestamp": at(33),
            "userId": "user-A",
            "anonymousId": "anon-A",
            "traits": {"email": "a@shop.example"},
        },
        view("a6", 34, "p3", userId="user-A", **anon),
        add("a7", 35, "p3", 25.0, userId="user-A", **anon),
        order("g1", 0, context={"traits": {"email": "guest@shop.example"}}),
        {
            "type": "identify",
            "messageId": "g2",
            "timestamp": at(24 * 60),
            "userId": "user-G",
            "traits": {"email": "guest@shop.example"},
        },
        order("g3", 24 * 60 + 5, userId="user-G"),
        {"type": "page", "messageId": "z", "timestamp": at(3 * 24 * 60), "userId": "clock"},
    ]
