"""A traffic simulator of realistic shoppers, for the demo and benchmarks.

Pure: a seeded RNG and time passed in, so a seed gives the same traffic every run. Shoppers
browse and search on the web, add to cart and buy or abandon, use the app logged in, open and
click e-mails, buy in stores identified by loyalty id, e-mail or phone, and come back. Session
events are spread over time; ``due(now)`` returns the raw Segment-spec events that are due.
A small share of events is deliberately broken, as real traffic is, to exercise the
dead-letter path.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from wayline.schemas.timestamps import format_timestamp

CATALOG: tuple[tuple[str, str, float], ...] = tuple(
    (f"{category[:2].upper()}-{i:03d}", category, price)
    for category, prices in {
        "shoes": (59.0, 89.0, 129.0, 179.0),
        "apparel": (19.0, 29.0, 49.0, 79.0),
        "outdoor": (35.0, 99.0, 249.0),
        "home": (15.0, 39.0, 89.0),
        "beauty": (9.0, 24.0, 42.0),
    }.items()
    for i, price in enumerate(prices)
)
CITIES = (
    ("US", "NY", "New York", "America/New_York", "+1 212-555-{:04d}"),
    ("US", "CA", "San Francisco", "America/Los_Angeles", "+1 415-555-{:04d}"),
    ("GB", "ENG", "London", "Europe/London", "+44 20 7946 {:04d}"),
    ("DE", "BE", "Berlin", "Europe/Berlin", "+49 30 901820{:02d}"),
    ("FR", "IDF", "Paris", "Europe/Paris", "+33 1 42 68 {:02d} {:02d}"),
)
BROKEN_SHARE = 0.005


@dataclass
class Shopper:
    index: int
    user_id: str
    email: str
    phone: str
    loyalty_id: str
    anonymous_id: str
    device_id: str
    city: tuple[str, str, str, str, str]
    has_app: bool
    known: bool = False
    cart: list[tuple[str, str, float]] = field(default_factory=list)
    cart_id: str = ""


def _phone(rng: random.Random, template: str) -> str:
    if template.count("{") == 2:
        return template.format(rng.randrange(100), rng.randrange(100))
    return template.format(rng.randrange(100 if "{:02d}" in template else 10000))


def make_shoppers(rng: random.Random, count: int) -> list[Shopper]:
    shoppers = []
    for i in range(count):
        city = rng.choice(CITIES)
        shoppers.append(
            Shopper(
                index=i,
                user_id=f"u{i:06d}",
                email=f"  Shopper.{i}@Example.com " if i % 7 == 0 else f"shopper.{i}@example.com",
                phone=_phone(rng, city[4]),
                loyalty_id=f"L-{100000 + i}",
                anonymous_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                device_id=f"dev-{rng.getrandbits(48):012x}",
                city=city,
                has_app=rng.random() < 0.4,
            )
        )
    return shoppers


class Simulator:
    """Generates sessions at ``sessions_per_s`` and returns their events as they fall due."""

    def __init__(self, seed: int = 7, shoppers: int = 2000, sessions_per_s: float = 20.0):
        self.rng = random.Random(seed)
        self.shoppers = make_shoppers(self.rng, shoppers)
        self.sessions_per_s = sessions_per_s
        self._queue: list[tuple[datetime, int, str, dict[str, Any]]] = []
        self._seq = itertools.count()
        self._next_session: datetime | None = None
        self.produced = 0
        self.broken = 0

    def due(self, now: datetime) -> list[tuple[str, dict[str, Any]]]:
        """Events due at ``now`` as ``(source name, raw event)``, in time order."""
        if self._next_session is None:
            self._next_session = now
        while self._next_session <= now:
            self._start_session(self._next_session)
            gap = self.rng.expovariate(self.sessions_per_s)
            self._next_session += timedelta(seconds=gap)
        out = []
        while self._queue and self._queue[0][0] <= now:
            at, _, source, event = heapq.heappop(self._queue)
            out.append((source, self._finish(event, at)))
        self.produced += len(out)
        return out

    def _finish(self, event: dict[str, Any], at: datetime) -> dict[str, Any]:
        event["messageId"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        skew = timedelta(seconds=self.rng.choice((0, 0, 0, 2, -3, 3600)))
        event.setdefault("originalTimestamp", format_timestamp(at + skew))
        event.setdefault("sentAt", format_timestamp(at + skew + timedelta(milliseconds=80)))
        if self.rng.random() < BROKEN_SHARE:
            self.broken += 1
            return self._break(event)
        return event

    def _break(self, event: dict[str, Any]) -> dict[str, Any]:
        kind = self.rng.randrange(3)
        if kind == 0:
            event.pop("userId", None)
            event.pop("anonymousId", None)
            event.get("context", {}).pop("traits", None)
            event.get("context", {}).pop("externalIds", None)
            event.get("context", {}).pop("device", None)
            event.pop("traits", None)
        elif kind == 1:
            event["timestamp"] = "yesterday at noon"
        else:
            event["properties"] = "not an object"
        return event

    def _schedule(self, at: datetime, source: str, event: dict[str, Any]) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), source, event))

    def _start_session(self, at: datetime) -> None:
        shopper = self.rng.choice(self.shoppers)
        roll = self.rng.random()
        if roll < 0.55:
            events = self._web_session(shopper)
        elif roll < 0.75 and shopper.has_app:
            events = self._app_session(shopper)
        elif roll < 0.90:
            events = self._email_session(shopper)
        else:
            events = self._store_visit(shopper)
        for offset_s, source, event in events:
            self._schedule(at + timedelta(seconds=offset_s), source, event)

    def _web_session(self, s: Shopper) -> Iterator[tuple[float, str, dict[str, Any]]]:
        t = 0.0
        ids = {"anonymousId": s.anonymous_id, **({"userId": s.user_id} if s.known else {})}
        ctx = {"page": {"path": "/"}, "userAgent": "Mozilla/5.0", "locale": "en-US"}
        yield t, "web", {"type": "page", "name": "Home", **ids, "context": dict(ctx)}
        if self.rng.random() < 0.4:
            t += self.rng.uniform(1, 3)
            query = self.rng.choice(("running shoes", "jacket", "tent", "lamp", "serum"))
            props = {"query": query}
            yield t, "web", self._track("Products Searched", ids, props, "web")
        yield from self._shop(s, ids, t, "web")
        if not s.known and self.rng.random() < 0.3:
            s.known = True
            yield t + 20, "web", self._identify(s, {"anonymousId": s.anonymous_id}, "web")

    def _app_session(self, s: Shopper) -> Iterator[tuple[float, str, dict[str, Any]]]:
        s.known = True
        ids = {"userId": s.user_id}
        context = {"channel": "app", "device": {"id": s.device_id, "type": "ios"}}
        yield 0.0, "app", {"type": "screen", "name": "Home", **ids, "context": context}
        if self.rng.random() < 0.2:
            yield 0.5, "app", self._identify(s, {}, "app")
        yield from self._shop(s, ids, 1.0, "app")

    def _shop(
        self, s: Shopper, ids: dict[str, str], t: float, source: str
    ) -> Iterator[tuple[float, str, dict[str, Any]]]:
        for _ in range(self.rng.randint(1, 4)):
            t += self.rng.uniform(2, 6)
            product = self.rng.choice(CATALOG)
            yield t, source, self._track("Product Viewed", ids, _product(product), source)
            if self.rng.random() < 0.3:
                if not s.cart:
                    s.cart_id = f"c-{self.rng.getrandbits(40):010x}"
                s.cart.append(product)
                props = {**_product(product), "cart_id": s.cart_id, "quantity": 1}
                yield t + 1, source, self._track("Product Added", ids, props, source)
        if s.cart and self.rng.random() < 0.45:
            yield t + 5, source, self._track("Checkout Started", ids, self._cart(s), source)
            if self.rng.random() < 0.7:
                yield t + 12, source, self._order(s, ids, source, extra={"cart_id": s.cart_id})

    def _email_session(self, s: Shopper) -> Iterator[tuple[float, str, dict[str, Any]]]:
        ids: dict[str, str] = {}
        ctx = {"channel": "email", "traits": {"email": s.email}}
        campaign = {"campaign_id": f"cmp-{self.rng.randrange(12)}", "email_id": s.email.strip()}
        yield (
            0.0,
            "email",
            {
                "type": "track",
                "event": "Email Delivered",
                **ids,
                "properties": campaign,
                "context": dict(ctx),
            },
        )
        if self.rng.random() < 0.5:
            yield (
                30.0,
                "email",
                {
                    "type": "track",
                    "event": "Email Opened",
                    "properties": campaign,
                    "context": dict(ctx),
                },
            )
            if self.rng.random() < 0.4:
                link = {**campaign, "link_url": "https://shop.example.com/sale"}
                yield (
                    40.0,
                    "email",
                    {
                        "type": "track",
                        "event": "Email Link Clicked",
                        "properties": link,
                        "context": dict(ctx),
                    },
                )
                yield from self._web_session(s)

    def _store_visit(self, s: Shopper) -> Iterator[tuple[float, str, dict[str, Any]]]:
        s.cart = [self.rng.choice(CATALOG) for _ in range(self.rng.randint(1, 3))]
        how = self.rng.random()
        if how < 0.5:
            ctx: dict[str, Any] = {"externalIds": [{"id": s.loyalty_id, "type": "loyalty_id"}]}
        elif how < 0.8:
            ctx = {"traits": {"email": s.email}}
        else:
            ctx = {"traits": {"phone": s.phone}}
        ctx["channel"] = "store"
        event = self._order(s, {}, "store", extra={"store_id": f"st-{s.index % 9}"})
        event["context"] = ctx
        yield 0.0, "store", event

    def _order(
        self, s: Shopper, ids: dict[str, str], source: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        props = {**self._cart(s), "order_id": f"o-{self.rng.getrandbits(48):012x}", **extra}
        s.cart, s.cart_id = [], ""
        return self._track("Order Completed", ids, props, source)

    @staticmethod
    def _cart(s: Shopper) -> dict[str, Any]:
        total = round(sum(price for _, _, price in s.cart), 2)
        return {
            "products": [_product(p) for p in s.cart],
            "revenue": total,
            "total": total,
            "currency": "USD",
        }

    def _identify(self, s: Shopper, ids: dict[str, str], source: str) -> dict[str, Any]:
        country, region, city, tz, _ = s.city
        traits: dict[str, Any] = {
            "email": s.email,
            "phone": s.phone,
            "first_name": f"Shopper{s.index}",
            "country": country,
            "region": region,
            "city": city,
            "timezone": tz,
            "birthday": _birthday(s.index),
        }
        if s.index % 3 == 0:  # a third of the shoppers opted in to marketing texts
            traits["consent"] = {"sms": True}
        return {
            "type": "identify",
            "userId": s.user_id,
            **ids,
            "traits": traits,
            "context": {"channel": source},
        }

    @staticmethod
    def _track(
        name: str, ids: dict[str, str], props: dict[str, Any], source: str
    ) -> dict[str, Any]:
        return {
            "type": "track",
            "event": name,
            **ids,
            "properties": props,
            "context": {"channel": source},
        }


def _product(product: tuple[str, str, float]) -> dict[str, Any]:
    sku, category, price = product
    return {"product_id": sku, "sku": sku, "category": category, "price": price}


def utc_now() -> datetime:
    """The wall clock, for callers at the edge (the simulator itself never reads it)."""
    return datetime.now(UTC)


def _birthday(index: int) -> str:
    return f"19{70 + index % 30}-{1 + index % 12:02d}-{1 + index % 28:02d}"
