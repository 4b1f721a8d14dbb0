"""Reading a profile state at a moment: computed traits, RFM, lifecycle stage, the snapshot.

``snapshot(profile_id, state, now_ms)`` is the public profile document (``wayline.profiles`` and
``GET /v1/profiles/...``); its top-level keys are a contract.

Lifecycle stages, from the customer's own history:

- **awareness**: seen, but no product interest yet;
- **consideration**: viewed a product, added to a cart, started a checkout or clicked an e-mail;
- **conversion**: exactly one order;
- **retention**: two or more orders;
- **advocacy**: five or more orders, or any order plus a review or referral.

RFM scores are 1–5 (5 best): recency by days since the last order (≤ 30, 90, 180, 365, more),
frequency by order count (≥ 10, 5, 3, 2, 1), monetary by revenue (≥ 1500, 500, 150, 50, less);
0 without orders.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Final

import orjson

from wayline.profiles.state import DAY_MS, State, viewed_oldest_first
from wayline.schemas.timestamps import epoch_ms, format_days, format_ms

WINDOWS: Final = (7, 30, 90)
_WINDOW_KEYS: Final = tuple((window, f"{window}d") for window in WINDOWS)
INTEREST: Final = ("Product Viewed", "Product Added", "Checkout Started", "Email Link Clicked")
ADVOCACY: Final = ("Product Reviewed", "Review Submitted", "Referral Sent")


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as ``2026-11-23T10:00:00.000Z``, or None."""
    return None if ms is None else format_ms(int(ms))


class CountsMemo:
    """What a profile's documents last read of each event name's counts, kept by a caller that
    encodes them often (the profile worker, between batches): its activity days (already
    encoded) and its windowed counts, each with the counts entry it was read from, that
    entry's total and number of days and the day it was read for. A name is read again only
    when one of those differs. That is exact because an entry changes in place only by counting
    one more event (its total grows) or by dropping its oldest days (fewer days); a merge builds
    new entries. What the memo hands out is shared with it: read, never change."""

    def __init__(self) -> None:
        self.days: dict[str, tuple[dict[str, Any], int, int, int, Any]] = {}
        self.windows: dict[str, tuple[dict[str, Any], int, int, int, Any]] = {}
        # per name, the days of its activity as last read and their counts, the same without
        # the last day, and the rows (``_rows``) without the last day's and with it
        self.rows: dict[str, tuple[list[Any], list[Any], list[Any], list[Any], str, str]] = {}


def _kept(
    memo: dict[str, tuple[dict[str, Any], int, int, int, Any]],
    name: str,
    entry: dict[str, Any],
    today: int,
) -> Any:
    """What ``memo`` holds for ``name`` read as of ``today`` from ``entry`` as it is; else None."""
    known = memo.get(name)
    if (
        known is not None
        and known[0] is entry
        and known[1] == entry["n"]
        and known[2] == len(entry["days"])
        and known[3] == today
    ):
        return known[4]
    return None


def activity(state: State, now_ms: int, memo: CountsMemo | None = None) -> dict[str, Any]:
    """Per event name, its count per UTC day over the longest window before ``now_ms``: what
    the windowed counts are made of, so a reader can take them as of a later moment. With a
    ``memo`` each name's days come encoded (``orjson.Fragment``), for a caller that encodes the
    document and nothing else."""
    today = now_ms // DAY_MS
    out: dict[str, Any] = {}
    for name, entry in sorted(state["counts"].items()):
        if entry["n"] <= 0:
            continue
        if memo is not None:
            known = _kept(memo.days, name, entry, today)
            if known is None:
                known = _read_days(memo, name, entry, today)
            if known is not False:
                out[name] = known
            continue
        rows = _days(entry, today)
        if rows:
            out[name] = rows
    return out


def _read_days(memo: CountsMemo, name: str, entry: dict[str, Any], today: int) -> Any:
    """A name's activity days as of ``today``, encoded (False: none), kept in ``memo``. A live
    event counts on the last day of the window (or starts a day after it), so the rows of the
    days before it are taken from the last read while those days and their counts are the
    same, and only the last day's row is written."""
    span, counts = _window(entry, today)
    if not span:
        memo.rows.pop(name, None)
        encoded: Any = False
    else:
        before, before_counts = span[:-1], counts[:-1]
        head: str | None = None
        last = memo.rows.get(name)
        if last is not None:
            if before == last[2] and before_counts == last[3]:
                head = last[4]  # the same days before the last one
            elif before == last[0] and before_counts == last[1]:
                head = last[5]  # a day after the last one read
        if head is None:
            head = _rows(before, before_counts)
        row = _rows(span[-1:], counts[-1:])
        rows = f"{head},{row}" if head else row
        memo.rows[name] = (span, counts, before, before_counts, head, rows)
        encoded = orjson.Fragment(f"{{{rows}}}".encode())
    memo.days[name] = (entry, int(entry["n"]), len(entry["days"]), today, encoded)
    return encoded


def _rows(days: list[Any], counts: list[Any]) -> str:
    """Days and their counts as the rows of a JSON object (``"day":n`` joined by commas)."""
    return ",".join([f'"{t}":{n}' for t, n in zip(format_days(days), counts, strict=True)])


def _days(entry: dict[str, Any], today: int) -> dict[str, int]:
    span, counts = _window(entry, today)
    return dict(zip(format_days(span), counts, strict=True))


def _window(entry: dict[str, Any], today: int) -> tuple[list[Any], list[Any]]:
    """The days of an event name's counts in the longest window before ``today``, and their
    counts."""
    days: list[Any] = entry["days"]  # Any: compiled, the numbers are not unboxed
    start = bisect_right(days, today - WINDOWS[-1])
    end = bisect_right(days, today, start)
    return days[start:end], entry["ns"][start:end]


def at_moment(doc: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The profile document ``doc`` with its time-based traits taken as of ``now_ms`` (never
    before its own ``as_of``): windowed event counts from its ``activity``, RFM recency from the
    last order. Segment memberships stay as the pipeline last decided them."""
    as_of = _epoch(doc["computed"]["as_of"])
    if as_of is None or now_ms <= as_of:
        return doc
    today = now_ms // DAY_MS
    computed = dict(doc["computed"])
    counts = {}
    for name, row in computed["event_counts"].items():
        days = [
            (epoch_ms(d) // DAY_MS, n) for d, n in doc.get("activity", {}).get(name, {}).items()
        ]
        windows = {f"{w}d": sum(n for d, n in days if today - d < w) for w in WINDOWS}
        counts[name] = {"all_time": row["all_time"], **windows}
    computed["event_counts"] = counts
    last = _epoch(computed.get("last_order_at"))
    if last is not None:
        days_since = (now_ms - last) / DAY_MS
        computed["rfm"] = {**computed["rfm"], "recency": _score(-days_since, RECENCY_STEPS)}
    computed["as_of"] = iso(now_ms)
    return {**doc, "computed": computed}


def _epoch(text: Any) -> int | None:
    return epoch_ms(text) if isinstance(text, str) else None


def event_counts(
    state: State, now_ms: int, memo: CountsMemo | None = None
) -> dict[str, dict[str, int]]:
    today = now_ms // DAY_MS
    out: dict[str, dict[str, int]] = {}
    for name, entry in sorted(state["counts"].items()):
        if entry["n"] <= 0:
            continue
        row = _kept(memo.windows, name, entry, today) if memo is not None else None
        if row is None:
            row = {"all_time": entry["n"]}
            days: list[int] = entry["days"]
            ns: list[int] = entry["ns"]
            for window, key in _WINDOW_KEYS:  # the days after today - window
                total = 0
                for i in range(bisect_right(days, today - window), len(ns)):
                    total += ns[i]  # compiled: native list reads and integer sums
                row[key] = total
            if memo is not None:
                memo.windows[name] = (entry, int(entry["n"]), len(days), today, row)
        out[name] = row
    return out


ORDER_FIELDS: Final = (
    "order_count", "revenue", "aov", "first_order_at", "last_order_at", "mean_days_between_orders"
)  # fmt: skip


def order_figure(state: State, name: str) -> Any:
    """One figure of ``orders_summary`` (rules read them one at a time; the dates cost most)."""
    stats = state["order_stats"]
    if name == "order_count":
        return int(stats["n"])
    if name == "revenue":
        return _revenue(stats)
    return orders_summary(state)[name]


def _revenue(stats: dict[str, Any]) -> float:
    return round(int(stats["micros"]) / 1_000_000, 2)


def orders_summary(state: State) -> dict[str, Any]:
    """The order figures of the document (keys: ``ORDER_FIELDS``)."""
    stats = state["order_stats"]
    count, first, last = int(stats["n"]), stats["first"], stats["last"]
    revenue = _revenue(stats)
    gap = None
    if count >= 2 and first is not None and last is not None:
        gap = round((last - first) / DAY_MS / (count - 1), 2)
    return {
        "order_count": count,
        "revenue": revenue,
        "aov": round(revenue / count, 2) if count else 0.0,
        "first_order_at": iso(first),
        "last_order_at": iso(last),
        "mean_days_between_orders": gap,
    }


def cart(state: State) -> dict[str, Any] | None:
    items: dict[str, dict[str, Any]] = {}
    cart_id = None
    for ts, _msgid, product, delta, price, name, cid in state["cart"]:
        item = items.setdefault(product, {"product_id": product, "quantity": 0, "price": price})
        item["quantity"] += delta
        item["price"] = price or item["price"]
        if name:
            item["name"] = name
        cart_id = cid or cart_id
        del ts
    live = [i for i in items.values() if i["quantity"] > 0]
    if not live:
        return None
    return {
        "cart_id": cart_id,
        "items": live,
        "value": round(sum(i["quantity"] * i["price"] for i in live), 2),
        "last_activity_at": iso(state["cart"][-1][0]),
    }


def lifecycle_stage(state: State) -> str:
    orders = state["order_stats"]["n"]
    counts = state["counts"]
    if orders >= 5 or (orders and _performed_any(counts, ADVOCACY)):
        return "advocacy"
    if orders >= 2:
        return "retention"
    if orders == 1:
        return "conversion"
    return "consideration" if _performed_any(counts, INTEREST) else "awareness"


def _performed_any(counts: dict[str, Any], names: tuple[str, ...]) -> bool:
    for name in names:
        entry = counts.get(name)
        if entry is not None and entry["n"] > 0:
            return True
    return False


# days since the last order where the recency score steps down, and as thresholds on minus
# the days
RECENCY_DAYS: Final = (30, 90, 180, 365)
RECENCY_STEPS: Final = tuple(-float(days) for days in RECENCY_DAYS)


def rfm(state: State, now_ms: int) -> dict[str, int]:
    stats = state["order_stats"]
    if not stats["n"]:
        return {"recency": 0, "frequency": 0, "monetary": 0}
    days = (now_ms - stats["last"]) / DAY_MS
    revenue = stats["micros"] / 1_000_000
    return {
        "recency": _score(-days, RECENCY_STEPS),
        "frequency": _score(stats["n"], (10, 5, 3, 2)),
        "monetary": _score(revenue, (1500, 500, 150, 50)),
    }


def _score(value: float, thresholds: tuple[float, ...]) -> int:
    for i, threshold in enumerate(thresholds):
        if value >= threshold:
            return 5 - i
    return 1


def favorite_category(state: State) -> str | None:
    cats: dict[str, int] = state["cats"]
    if not cats:
        return None
    return min([(-n, c) for c, n in cats.items()])[1]  # compiled: no key function called


def recently_viewed(state: State) -> list[str]:
    return viewed_oldest_first(state["viewed"])[::-1]


def computed(state: State, now_ms: int, memo: CountsMemo | None = None) -> dict[str, Any]:
    """Computed traits as of ``now_ms`` (``as_of``: windows, RFM recency and the like are
    exact for that moment)."""
    return {
        "as_of": iso(now_ms),
        **orders_summary(state),
        "favorite_category": favorite_category(state),
        "recently_viewed": recently_viewed(state),
        "cart": cart(state),
        "lifecycle_stage": lifecycle_stage(state),
        "rfm": rfm(state, now_ms),
        "event_counts": event_counts(state, now_ms, memo),
        "location": {k: v[0] for k, v in sorted(state["location"].items())},
        "timezone": state["tz"][0] if state["tz"] else None,
    }


def snapshot(
    profile_id: str,
    state: State,
    now_ms: int,
    version: int = 0,
    segments: list[str] | None = None,
    memo: CountsMemo | None = None,
) -> dict[str, Any]:
    """The profile document; ``version`` counts changes (not part of the fold); ``memo``: what
    the profile's last documents read of its counts (``CountsMemo``)."""
    traits = {k: v[0] for k, v in sorted(state["once"].items())}
    traits.update({k: v[0] for k, v in sorted(state["traits"].items())})
    channels = {
        ch: {"first_seen": iso(first), "last_seen": iso(last)}
        for ch, (first, last) in sorted(state["channels"].items())
    }
    firsts = [c[0] for c in state["channels"].values()]
    lasts = [c[1] for c in state["channels"].values()]
    return {
        "profile_id": profile_id,
        "version": version,
        "identifiers": {k: list(v) for k, v in sorted(state["ids"].items())},
        "traits": traits,
        "computed": computed(state, now_ms, memo),
        "channels": channels,
        "consent": {k: v[0] for k, v in sorted(state["consent"].items())},
        "contact": contact_points(state),
        "segments": sorted(segments if segments is not None else state.get("segments") or {}),
        "merged_from": list(state["merged_from"]),
        "activity": activity(state, now_ms, memo),
        "first_seen": iso(min(firsts)) if firsts else None,
        "last_seen": iso(max(lasts)) if lasts else None,
    }


def contact_points(state: State) -> dict[str, Any]:
    """Where and whether the profile may be reached, as the delivery worker needs it: the
    e-mail address and phone number to use (the ``email``/``phone`` trait when it is one of the
    profile's identifiers, else the first identifier), the time zone, consent per channel, and
    the hard suppressions that apply to those addresses (channel → reason)."""
    ids = state["ids"]
    email = _preferred(state, "email", ids.get("email") or [], str.lower)
    phone = _preferred(state, "phone", ids.get("phone") or [], lambda v: v.replace(" ", ""))
    suppressed: dict[str, str] = {}
    for key, cell in sorted((state.get("suppressed") or {}).items()):
        channel, _, address = key.partition(":")
        if cell[0] and (not address or address == {"email": email, "sms": phone}.get(channel)):
            suppressed.setdefault(channel, cell[0])
    lasts = [c[1] for c in state["channels"].values()]
    return {
        "email": email,
        "phone": phone,
        "timezone": state["tz"][0] if state["tz"] else None,
        "consent": {k: v[0] for k, v in sorted(state["consent"].items())},
        "suppressed": suppressed,
        "last_seen": iso(max(lasts)) if lasts else None,
    }


def _preferred(state: State, trait: str, values: list[str], norm: Any) -> str | None:
    cell = state["traits"].get(trait)
    if cell is not None and isinstance(cell[0], str) and norm(cell[0].strip()) in values:
        return str(norm(cell[0].strip()))
    return values[0] if values else None
