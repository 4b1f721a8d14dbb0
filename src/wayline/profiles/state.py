"""Profile state as a mergeable fold: ``apply_event(state, event)`` and ``merge(a, b)``.

The state is a plain JSON-able dict (it lives in RocksDB and on the changelog). Every part is
built so that the result depends only on the *set* of events, not their order, duplicates or
how profiles were merged:

- traits, consent, location, time zone: last writer wins by (event time, messageId);
- suppressions (a hard bounce, a spam complaint, an SMS STOP), per channel and address: last
  writer wins too, and only an SMS START lifts one (``SUPPRESSING_EVENTS``);
  ``$set_once`` traits: first writer wins;
- first/last seen per channel: min/max;
- event counts: per event name a total and day buckets (kept for 90 days past the newest
  event); each message id's contribution is remembered in ``seen`` so a duplicate is ignored and
  a merge of two states that both counted a message subtracts it once;
- orders by order id, and what is read of them (count, revenue, first and last) kept beside
  in ``order_stats``; categories; recently viewed products by the time of their latest view;
- cart: the cart events after the newest order (an order empties the cart).

``seen`` is bounded: past ``SEEN_LIMIT + SEEN_SLACK`` message ids it keeps the ``SEEN_LIMIT``
newest (by event time, then id); duplicates older than that are caught by the validate worker's
24 h dedupe. The fold reads and writes ``seen`` (and ``fired``, ``orders``) only as a mutable
mapping (membership, one entry in, oldest entries out, all entries at a merge), so the profile
worker keeps it beside the state once it grows (``wayline.streams.keyedlog``) and a long
history costs an event little.
Reading the state (computed traits, RFM, lifecycle) is in ``wayline.profiles.view``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, MutableMapping
from hashlib import blake2b
from typing import Any, Final

from wayline.schemas.timestamps import (
    epoch_ms as epoch_ms,  # bench.segments reads it here, as on older trees
)

State = dict[str, Any]
DAY_MS: Final = 86_400_000
BUCKET_DAYS: Final = 91
SEEN_LIMIT: Final = 5000
SEEN_SLACK: Final = 500  # trimmed in steps, so the oldest ids are looked for once per 500 events
VIEWED_LIMIT: Final = 20
BROWSE_LIMIT: Final = 50  # products with views since their last cart add, the most recently viewed
CART_LIMIT: Final = 100  # the newest cart events kept (an abandoned cart does not grow forever)
TYPE_NAMES: Final = {
    "page": "Page Viewed",
    "screen": "Screen Viewed",
    "identify": "Identify",
    "group": "Group",
    "alias": "Alias",
}
CONSENT_OFF_EVENTS: Final = {"Unsubscribed": "email", "Email Marked as Spam": "email"}
# event → (channel, reason); reason None lifts the channel's suppression (an SMS START)
SUPPRESSING_EVENTS: Final[dict[str, tuple[str, str | None]]] = {
    "Email Bounced": ("email", "bounced"),
    "Email Marked as Spam": ("email", "complained"),
    "SMS Opted Out": ("sms", "sms_stop"),
    "SMS Opted In": ("sms", None),
}
SOFT_BOUNCES: Final = frozenset({"blocked", "soft", "transient"})  # bounces that suppress nothing
ADDRESS_KINDS: Final = {"email": "email", "sms": "phone"}
LOCATION_FIELDS: Final = ("country", "region", "city")
CATEGORY_EVENTS: Final = frozenset({"Product Viewed", "Product Added", "Order Completed"})


def empty_state() -> State:
    return {
        "ids": {},
        "traits": {},
        "once": {},
        "channels": {},
        "counts": {},
        "max_day": None,
        "seen": {},
        "orders": {},  # order id → [ts, revenue, message id]: the earliest claim
        "order_stats": _no_orders(),  # what the document and rules read of the orders
        "cats": {},
        "viewed": {},
        "cart": [],
        "cart_cleared_at": None,
        "consent": {},
        "suppressed": {},  # "channel:address" → [reason or None, ts, msgid]
        "location": {},
        "tz": None,
        "merged_from": [],
        "conds": {},  # the segment rules' event counters (wayline.segments.subject)
        "segments": {},  # segment name → [rule version, entered at]
        "segment_due": {},  # timed segment → when it may change next
        "trigger_due": {},  # trigger rule → when it may fire next
        "fired": {},  # trigger occasions already fired → when (wayline.segments.triggers)
        "browse": {},  # product → [views since last added to a cart, last view]
    }


def event_name(event: Mapping[str, Any]) -> str:
    if event.get("type") == "track":
        return str(event.get("event"))
    return TYPE_NAMES.get(str(event.get("type")), str(event.get("type")))


def is_counted(state: State, event: Mapping[str, Any]) -> bool:
    """True when ``state`` already counted this event (its message id)."""
    return str(event["messageId"]) in state["seen"]


def apply_event(state: State, event: Mapping[str, Any], linked: list[tuple[str, str]]) -> bool:
    """Fold one canonical event into ``state`` in place; False when it was already counted."""
    msgid = str(event["messageId"])
    if msgid in state["seen"]:
        _add_ids(state, linked)
        return False
    ts = epoch_ms(event["timestamp"])
    stamp = [ts, msgid]
    name = event_name(event)
    props = event.get("properties") or {}
    context = event.get("context") or {}
    _add_ids(state, linked)
    _seen_channel(state, str(context.get("channel") or "web"), ts)
    cats = _categories(name, props) if name in CATEGORY_EVENTS else []
    day = ts // DAY_MS
    _count(state, name, day, 1, cats)
    seen = state["seen"]
    seen[msgid] = [name, day, cats, ts]
    if len(seen) > SEEN_LIMIT + SEEN_SLACK:
        _trim_seen(seen)
    sources = _trait_sources(event, context)
    if sources:
        _traits(state, sources, stamp)
    _consent(state, name, sources, props, stamp)
    if name in SUPPRESSING_EVENTS:
        _suppression(state, name, props, linked, stamp)
    _location(state, sources, context, stamp)
    if name == "Order Completed":
        _order(state, props, msgid, ts)
    elif name == "Product Viewed" and _product(props):
        _view(state, _product(props), ts)
    elif name in ("Product Added", "Product Removed"):
        _cart_event(state, name, props, ts, msgid)
    return True


def merge(a: State, b: State) -> State:
    """A new state holding both profiles' events once: commutative and associative."""
    out = empty_state()
    for src in (a, b):
        _add_ids(out, [(k, v) for k, vs in src["ids"].items() for v in vs])
        for ch, (first, last) in src["channels"].items():
            _seen_channel(out, ch, first)
            _seen_channel(out, ch, last)
        _sum_counts(out, src)
        _merge_cells(out, src)
        for oid, order in src["orders"].items():
            _keep_order(out, oid, order)
        for product, at in src["viewed"].items():
            _view(out, product, at)
        out["merged_from"] = sorted({*out["merged_from"], *src["merged_from"]})
    seen_a, seen_b = dict(a["seen"].items()), dict(b["seen"].items())
    for msgid in seen_a.keys() & seen_b.keys():  # counted by both: take it back once
        name, day, cats, _ts = seen_a[msgid]
        _count(out, name, day, -1, cats)
    out["seen"] = seen_a | seen_b
    _trim_seen(out["seen"])
    out["conds"] = _merge_conds(a.get("conds") or {}, b.get("conds") or {})
    for src in (a, b):  # memberships are re-evaluated after a merge; start from both sides
        for name, (version, since) in (src.get("segments") or {}).items():
            known = out["segments"].get(name)
            if known is None or (version, -since) > (known[0], -known[1]):
                out["segments"][name] = [version, since]
    for src in (a, b):
        for key, at in (src.get("fired") or {}).items():
            out["fired"][key] = min(at, out["fired"].get(key, at))
        for product, (count, last) in (src.get("browse") or {}).items():
            known = out["browse"].get(product, [0, last])
            out["browse"][product] = [known[0] + count, max(known[1], last)]
    trim_browse(out["browse"])
    cart = {e[1]: e for e in (*a["cart"], *b["cart"])}
    out["cart"] = sorted(cart.values())[-CART_LIMIT:]
    _cleared_at(out, a["cart_cleared_at"])
    _cleared_at(out, b["cart_cleared_at"])
    _clear_cart(out)
    _trim_days(out)
    return out


def _merge_conds(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Rule counters of two profiles; a message both counted (as far as the newest kept
    timestamps show) is counted once."""
    out: dict[str, Any] = {}
    for key in a.keys() | b.keys():
        left, right = a.get(key), b.get(key)
        if left is None or right is None:
            cell = left if left is not None else right
            assert cell is not None
            out[key] = {"n": cell["n"], "t": [list(t) for t in cell["t"]]}
            continue
        shared = {t[1] for t in left["t"]} & {t[1] for t in right["t"]}
        stamps = {t[1]: list(t) for t in (*left["t"], *right["t"])}
        keep = max(len(left["t"]), len(right["t"]), 1)
        out[key] = {
            "n": left["n"] + right["n"] - len(shared),
            "t": sorted(stamps.values(), reverse=True)[:keep],
        }
    return out


def _sum_counts(out: State, src: State) -> None:
    for name, entry in src["counts"].items():
        counts = out["counts"].setdefault(name, _no_count())
        counts["n"] += entry["n"]
        for day, n in zip(entry["days"], entry["ns"], strict=True):
            _add_to_day(counts, day, n)
    for cat, n in src["cats"].items():
        out["cats"][cat] = out["cats"].get(cat, 0) + n
    _max_day(out, src["max_day"])


def _merge_cells(out: State, src: State) -> None:
    for key in ("traits", "consent", "location"):
        for name, cell in src[key].items():
            _lww(out[key], name, cell[0], cell[1:])
    for name, cell in src["once"].items():
        _first(out["once"], name, cell[0], cell[1:])
    if src["tz"] is not None:
        out["tz"] = _later(out["tz"], src["tz"])
    for name, cell in (src.get("suppressed") or {}).items():
        _lww(out["suppressed"], name, cell[0], cell[1:])


def _add_ids(state: State, linked: list[tuple[str, str]]) -> None:
    ids = state["ids"]
    for kind, value in linked:
        values = ids.get(kind)
        if values is None:
            ids[kind] = [value]
        elif value not in values:
            values.append(value)
            values.sort()


def _seen_channel(state: State, channel: str, ts: int) -> None:
    cell = state["channels"].get(channel)
    if cell is None:
        state["channels"][channel] = [ts, ts]
    elif ts < cell[0]:
        cell[0] = ts
    elif ts > cell[1]:
        cell[1] = ts


def _count(state: State, name: str, day: int, delta: int, cats: list[str]) -> None:
    counts = state["counts"].get(name)
    if counts is None:
        counts = state["counts"][name] = _no_count()
    counts["n"] += delta
    if state["max_day"] is None or day > state["max_day"]:
        state["max_day"] = day
        _trim_days(state)  # only a newer day can push buckets out of the window
    if day > state["max_day"] - BUCKET_DAYS:
        _add_to_day(counts, day, delta)
    for cat in cats:
        state["cats"][cat] = state["cats"].get(cat, 0) + delta
        if state["cats"][cat] == 0:
            del state["cats"][cat]


def _max_day(state: State, day: int | None) -> None:
    if day is not None and (state["max_day"] is None or day > state["max_day"]):
        state["max_day"] = day


def _trim_days(state: State) -> None:
    if state["max_day"] is None:
        return
    oldest = state["max_day"] - BUCKET_DAYS
    for counts in state["counts"].values():
        days = counts["days"]
        if days and days[0] <= oldest:
            cut = bisect.bisect_right(days, oldest)
            del days[:cut]
            del counts["ns"][:cut]


def _no_count() -> dict[str, Any]:
    """An event name's counts: the total and, per UTC day (ascending), that day's count."""
    return {"n": 0, "days": [], "ns": []}


def _add_to_day(counts: dict[str, Any], day: int, delta: int) -> None:
    days, ns = counts["days"], counts["ns"]
    at = bisect.bisect_left(days, day)
    if at < len(days) and days[at] == day:
        ns[at] += delta
        if ns[at] == 0:
            del days[at]
            del ns[at]
    elif delta:
        days.insert(at, day)
        ns.insert(at, delta)


def upgrade(state: State) -> State:
    """A state written before the day buckets were sorted lists (``{"d": {day: n}}``), before
    ``order_stats`` (its orders inside it), or before the rule counters kept message tokens
    and the viewed products their last view's time alone (``[ts, message id]`` in both), in
    place; a state of this shape is returned as it is."""
    for product, cell in state["viewed"].items():
        if isinstance(cell, list):
            state["viewed"][product] = int(cell[0])
    for cell in (state.get("conds") or {}).values():
        stamps = cell["t"]
        if stamps and isinstance(stamps[0][1], str):  # a counter's stamps are of one kind
            for stamp in stamps:
                stamp[1] = message_token(stamp[1])
            stamps.sort(reverse=True)  # newest first, ties now by token
    if "order_stats" not in state:
        orders = state["orders"]
        state["orders"], state["order_stats"] = {}, _no_orders()
        for oid, order in orders.items():
            _keep_order(state, oid, order)
    for name, counts in state["counts"].items():
        if "d" in counts:
            pairs = sorted((int(day), n) for day, n in counts["d"].items())
            state["counts"][name] = {
                "n": counts["n"],
                "days": [day for day, _n in pairs],
                "ns": [n for _day, n in pairs],
            }
    return state


def _trim_seen(seen: MutableMapping[str, list[Any]]) -> None:
    """Past the slack, keep the ``SEEN_LIMIT`` newest message ids (by event time, then id)."""
    if len(seen) > SEEN_LIMIT + SEEN_SLACK:
        by_age = sorted(seen.items(), key=lambda kv: (kv[1][3], kv[0]))
        for msgid, _entry in by_age[: len(by_age) - SEEN_LIMIT]:
            del seen[msgid]


def trim_browse(browse: dict[str, list[int]]) -> None:
    """Past ``BROWSE_LIMIT`` (and a slack of a tenth), keep the most recently viewed products."""
    if len(browse) > BROWSE_LIMIT + BROWSE_LIMIT // 10:
        newest = sorted(browse.items(), key=lambda kv: (kv[1][1], kv[0]))[-BROWSE_LIMIT:]
        browse.clear()
        browse.update(newest)


def _newer(stamp: list[Any], cell: list[Any] | None) -> bool:
    return cell is None or (stamp[0], stamp[1]) > (cell[1], cell[2])


def _lww(target: dict[str, Any], name: str, value: Any, stamp: list[Any]) -> None:
    if _newer(stamp, target.get(name)):
        target[name] = [value, *stamp]


def _first(target: dict[str, Any], name: str, value: Any, stamp: list[Any]) -> None:
    cell = target.get(name)
    if cell is None or (stamp[0], stamp[1]) < (cell[1], cell[2]):
        target[name] = [value, *stamp]


def _later(a: list[Any] | None, b: list[Any]) -> list[Any]:
    return b if a is None or (b[1], b[2]) > (a[1], a[2]) else a


def _trait_sources(event: Mapping[str, Any], context: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    if isinstance(context.get("traits"), dict):
        found.append(context["traits"])
    if event.get("type") == "identify" and isinstance(event.get("traits"), dict):
        found.append(event["traits"])
    return found


def _traits(state: State, sources: list[dict[str, Any]], stamp: list[Any]) -> None:
    for traits in sources:
        for name, value in traits.items():
            if name == "$set_once" and isinstance(value, dict):
                for once, once_value in value.items():
                    _first(state["once"], str(once), once_value, stamp)
            elif name != "consent":
                _lww(state["traits"], name, value, stamp)


def _consent(
    state: State,
    name: str,
    sources: list[dict[str, Any]],
    props: Mapping[str, Any],
    stamp: list[Any],
) -> None:
    if "consent" not in props and not sources and name not in CONSENT_OFF_EVENTS:
        return
    holders = [props.get("consent"), *(t.get("consent") for t in sources)]
    for holder in holders:
        if isinstance(holder, dict):
            for channel, granted in holder.items():
                if isinstance(granted, bool):
                    _lww(state["consent"], str(channel), granted, stamp)
    if name in CONSENT_OFF_EVENTS:
        channel = str(props.get("channel") or CONSENT_OFF_EVENTS[name])
        _lww(state["consent"], channel, False, stamp)


def _suppression(
    state: State,
    name: str,
    props: Mapping[str, Any],
    linked: list[tuple[str, str]],
    stamp: list[Any],
) -> None:
    """Suppress (or, for an SMS START, lift) the channel for the addresses the event names."""
    channel, reason = SUPPRESSING_EVENTS[name]
    if name == "Email Bounced" and str(props.get("bounce_type") or "").lower() in SOFT_BOUNCES:
        return
    kind = ADDRESS_KINDS[channel]
    addresses = sorted({value for k, value in linked if k == kind})
    target = state.setdefault("suppressed", {})
    for address in addresses or [""]:  # no address named: the whole channel
        _lww(target, f"{channel}:{address}", reason, stamp)


def _location(
    state: State, sources: list[dict[str, Any]], context: Mapping[str, Any], stamp: list[Any]
) -> None:
    if not sources and "location" not in context and "timezone" not in context:
        return
    places: list[Mapping[str, Any]] = []
    if isinstance(context.get("location"), dict):
        places.append(context["location"])
    for traits in sources:
        places.append(traits)
        if isinstance(traits.get("address"), dict):
            address = dict(traits["address"])
            address.setdefault("region", address.get("state"))
            places.append(address)
    for place in places:
        for key in LOCATION_FIELDS:
            value = place.get(key)
            if isinstance(value, str) and value.strip():
                _lww(state["location"], key, value.strip(), stamp)
    zone = context.get("timezone")
    for traits in sources:
        zone = traits.get("timezone", zone)
    if isinstance(zone, str) and zone:
        state["tz"] = _later(state["tz"], [zone, *stamp])


def _product(props: Mapping[str, Any]) -> str | None:
    value = props.get("product_id") or props.get("sku")
    return str(value) if value is not None else None


def _categories(name: str, props: Mapping[str, Any]) -> list[str]:
    if name in ("Product Viewed", "Product Added"):
        cat = props.get("category")
        return [str(cat)] if isinstance(cat, str) and cat else []
    if name == "Order Completed":
        products = props.get("products")
        if isinstance(products, list):
            return sorted(
                str(p["category"])
                for p in products
                if isinstance(p, dict) and isinstance(p.get("category"), str) and p["category"]
            )
        cat = props.get("category")
        return [cat] if isinstance(cat, str) and cat else []
    return []


def order_revenue(props: Mapping[str, Any]) -> float:
    """An order's revenue: ``revenue``, else ``total``, else the sum of its products."""
    for key in ("revenue", "total"):
        value = props.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    total = 0.0
    for product in props.get("products") or ():
        if isinstance(product, dict):
            price, qty = product.get("price"), product.get("quantity", 1)
            if isinstance(price, int | float) and isinstance(qty, int | float):
                total += float(price) * float(qty)
    return total


def _order(state: State, props: Mapping[str, Any], msgid: str, ts: int) -> None:
    oid = str(props.get("order_id") or msgid)
    _keep_order(state, oid, [ts, order_revenue(props), msgid])
    _cleared_at(state, ts)
    _clear_cart(state)


def _keep_order(state: State, oid: str, order: list[Any]) -> None:
    """One entry per order id; when two events claim one order, the earliest (then smallest
    message id) wins, whatever the arrival order. ``order_stats`` follows the entries (revenue
    in millionths, an exact sum in any order), so a reader never walks the orders."""
    orders = state["orders"]
    known = orders.get(oid)
    if known is not None and (order[0], order[2]) >= (known[0], known[2]):
        return
    orders[oid] = order
    stats, ts = state["order_stats"], order[0]
    stats["micros"] += _micros(order[1]) - (_micros(known[1]) if known is not None else 0)
    if known is None:
        stats["n"] += 1
    stats["first"] = ts if stats["first"] is None else min(stats["first"], ts)
    if known is not None and known[0] == stats["last"]:  # the latest order moved earlier
        stats["last"] = max(entry[0] for _oid, entry in orders.items())
    else:
        stats["last"] = ts if stats["last"] is None else max(stats["last"], ts)


def _micros(revenue: float) -> int:
    return round(float(revenue) * 1_000_000)


def _no_orders() -> dict[str, Any]:
    return {"n": 0, "micros": 0, "first": None, "last": None}


def _view(state: State, product: str | None, ts: int) -> None:
    if product is None:
        return
    viewed: dict[str, int] = state["viewed"]
    last = viewed.get(product)
    if last is None or ts > last:
        if last is not None:  # to the end: in live traffic the map stays in order of view
            del viewed[product]
        viewed[product] = ts
    while len(viewed) > VIEWED_LIMIT:  # one view in: the one viewed longest ago out
        oldest = min(viewed.values())
        del viewed[min([p for p, at in viewed.items() if at == oldest])]


def viewed_oldest_first(viewed: dict[str, int]) -> list[str]:
    """The viewed products by their last view (time, then product). A live profile's map is
    in that order already (``_view``), which one pass checks; otherwise they are sorted."""
    products: list[str] = list(viewed)
    times: list[int] = list(viewed.values())
    for i in range(1, len(products)):
        if times[i - 1] > times[i] or (times[i - 1] == times[i] and products[i - 1] > products[i]):
            return sorted(sorted(viewed), key=viewed.__getitem__)  # stable: equal times by product
    return products


def message_token(msgid: str) -> int:
    """A message id as the rule counters keep it beside each timestamp: 64 bits of its BLAKE2b
    digest (9 bytes stored instead of a 36-character id), by which a merge finds the messages
    both profiles counted."""
    return int.from_bytes(blake2b(msgid.encode(), digest_size=8).digest(), "big")


def _cart_event(state: State, name: str, props: Mapping[str, Any], ts: int, msgid: str) -> None:
    product = _product(props)
    if product is None:
        return
    qty = props.get("quantity", 1)
    qty = qty if isinstance(qty, int | float) and not isinstance(qty, bool) else 1
    price = props.get("price")
    price = float(price) if isinstance(price, int | float) and not isinstance(price, bool) else 0.0
    delta = qty if name == "Product Added" else -qty
    cart_id = props.get("cart_id")
    entry = [ts, msgid, product, delta, price, props.get("name"), cart_id]
    if entry not in state["cart"]:
        bisect.insort(state["cart"], entry)
        del state["cart"][:-CART_LIMIT]
    _clear_cart(state)


def _cleared_at(state: State, ts: int | None) -> None:
    if ts is not None and (state["cart_cleared_at"] is None or ts > state["cart_cleared_at"]):
        state["cart_cleared_at"] = ts


def _clear_cart(state: State) -> None:
    """An order empties the cart: drop the cart events up to the newest order event's time
    (of any Order Completed event, even one repeating a known order id, so the result does not
    depend on which of two claims to one order arrived first)."""
    cleared = state["cart_cleared_at"]
    if cleared is not None:
        state["cart"] = [e for e in state["cart"] if e[0] > cleared]
