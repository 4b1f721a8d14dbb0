"""Triggers: cart and browse abandonment, churn risk, milestones, segment entered/exited.

Pure: ``check(config, state, now_ms)`` looks at a profile state at a moment and
returns the triggers that are due and not fired yet, plus the next moment one may become due.
Each trigger has an **occasion** (the cart activity it is about, the last order, the milestone)
and fires once per (trigger, rule version, profile, occasion): occasions already fired are kept
in the state (``state["fired"]``), which merges as a union, and the CloudEvent id is derived from
them, so a re-sent event, a crash or a replay never fires twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from wayline.profiles.state import trim_browse
from wayline.profiles.view import cart, iso, orders_summary
from wayline.segments.membership import Transition
from wayline.segments.rules import duration_ms
from wayline.segments.subject import Subject

DAY_MS: Final = 86_400_000
# occasions remembered per profile (milestones are few; carts and churn roll)
FIRED_LIMIT: Final = 500
TYPE_PREFIX: Final = "wayline.trigger."


@dataclass(frozen=True)
class TriggerConfig:
    """The ``triggers:`` section of the config (keys are a public contract); None = off."""

    cart_after_ms: int | None = None
    browse_views: int = 2
    browse_after_ms: int | None = None
    churn_factor: float = 2.0
    churn_min_orders: int = 3
    churn_floor_ms: int | None = None
    churn: bool = False
    milestone_orders: tuple[int, ...] = ()
    milestone_revenue: tuple[float, ...] = ()
    birthday: bool = False
    anniversary: bool = False
    version: int = 1
    # the occasions of the order and revenue milestones as ``fired`` keys them, made once
    milestone_keys: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        occasions = [_orders_occasion(n) for n in self.milestone_orders]
        occasions += [_revenue_occasion(threshold) for threshold in self.milestone_revenue]
        keys = tuple(_fired_key("milestone", occasion) for occasion in occasions)
        object.__setattr__(self, "milestone_keys", keys)

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any], version: int = 1) -> TriggerConfig:
        cart_spec = spec.get("cart_abandoned") or {}
        browse = spec.get("browse_abandoned") or {}
        churn = spec.get("churn_risk")
        milestones = spec.get("milestones") or {}
        return cls(
            cart_after_ms=duration_ms(cart_spec.get("after")) if cart_spec else None,
            browse_views=int(browse.get("views", 2)),
            browse_after_ms=duration_ms(browse.get("after")) if browse else None,
            churn=churn is not None,
            churn_factor=float((churn or {}).get("factor", 2.0)),
            churn_min_orders=int((churn or {}).get("min_orders", 3)),
            churn_floor_ms=duration_ms((churn or {}).get("floor", "14d")),
            milestone_orders=tuple(int(n) for n in milestones.get("orders", ())),
            milestone_revenue=tuple(float(r) for r in milestones.get("revenue", ())),
            birthday=bool(milestones.get("birthday", False)),
            anniversary=bool(milestones.get("anniversary", False)),
            version=version,
        )


def trigger_types(config: TriggerConfig) -> set[str]:
    """The trigger types this config can fire, segment_entered/exited aside."""
    on = {
        "cart_abandoned": config.cart_after_ms is not None,
        "browse_abandoned": config.browse_after_ms is not None,
        "churn_risk": config.churn,
        "milestone": bool(
            config.milestone_orders
            or config.milestone_revenue
            or config.birthday
            or config.anniversary
        ),
    }
    return {name for name, enabled in on.items() if enabled}


class Fired(NamedTuple):  # a tuple: made per event
    trigger: str  # cart_abandoned | browse_abandoned | churn_risk | milestone | segment_*
    occasion: str
    at_ms: int
    reason: dict[str, Any]
    payload: dict[str, Any]


class Check(NamedTuple):
    fired: tuple[Fired, ...]
    next_due: int | None


def check(
    config: TriggerConfig,
    state: dict[str, Any],
    now_ms: int,
    event: tuple[str, set[str]] | None = None,
) -> Check:
    """The triggers due at ``now_ms`` that have not fired for their occasion yet.

    With ``event`` (its name and the trait keys it carried), only the rules that event can
    change are looked at, plus those whose due time has come; the others keep the due time
    they left in the state (``state["trigger_due"]``). Without it, all of them."""
    fired: list[Fired] = []
    dues: dict[str, int] = state.setdefault("trigger_due", {})
    for name, rule in RULES.items():
        due = dues.get(name)
        if event is not None and not _moved_by(name, *event) and (due is None or due > now_ms):
            continue
        found, due = rule(config, state, now_ms)
        fired += [f for f in found if _first_time(state, f)]
        if due is None:
            dues.pop(name, None)
        else:
            dues[name] = due
    return Check(tuple(fired), min(dues.values()) if dues else None)


def _moved_by(rule: str, event_name: str, trait_keys: set[str]) -> bool:
    if rule == "dates":  # birthday and time zone; anniversaries count from the first order
        return event_name == "Order Completed" or not trait_keys.isdisjoint(DATE_TRAITS)
    return event_name in RULE_EVENTS[rule]


def segment_triggers(state: dict[str, Any], transitions: tuple[Transition, ...]) -> list[Fired]:
    """segment_entered / segment_exited for the segments with ``notify: true``."""
    out = []
    for t in [t for t in transitions if t.notify]:
        kind = "segment_entered" if t.kind == "enter" else "segment_exited"
        occasion = f"{t.segment}@{t.version}@{t.at_ms}"
        reason = {"segment": t.segment, "transition": t.kind}
        fired = Fired(kind, occasion, t.at_ms, reason, {"segment": t.segment})
        if _first_time(state, fired):
            out.append(fired)
    return out


def cloud_event(
    fired: Fired,
    version: int,
    profile_id: str,
    identifiers: Mapping[str, Any],
    contact: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode document of one trigger (key = profile id)."""
    trigger = fired.trigger
    type_name = "milestone" if trigger == "milestone" else trigger
    return {
        "specversion": "1.0",
        "id": trigger_id(trigger, version, profile_id, fired.occasion),
        "source": f"/wayline/triggers/{type_name}",
        "type": TYPE_PREFIX + type_name,
        "subject": profile_id,
        "time": iso(fired.at_ms),
        "datacontenttype": "application/json",
        "data": {
            "profile_id": profile_id,
            "identifiers": dict(identifiers),
            "trigger": trigger,
            "rule_version": version,
            "occasion": fired.occasion,
            "reason": fired.reason,
            "payload": fired.payload,
            **({"contact": dict(contact)} if contact is not None else {}),
        },
    }


def trigger_id(trigger: str, version: int, profile_id: str, occasion: str) -> str:
    text = f"{trigger}\x1f{version}\x1f{profile_id}\x1f{occasion}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _fired_key(trigger: str, occasion: str) -> str:
    """How ``state["fired"]`` keys an occasion a trigger fired for."""
    return f"{trigger}:{occasion}"


def _orders_occasion(n: int) -> str:
    return f"orders:{n}"


def _revenue_occasion(threshold: float) -> str:
    return f"revenue:{threshold:g}"


def _first_time(state: dict[str, Any], fired: Fired) -> bool:
    done: MutableMapping[str, int] = state.setdefault("fired", {})  # kept beside, live
    key = _fired_key(fired.trigger, fired.occasion)
    if key in done:
        return False
    done[key] = fired.at_ms
    if len(done) > FIRED_LIMIT + FIRED_LIMIT // 10:  # trim now and then, not on every one
        for old, _ in sorted(done.items(), key=lambda kv: kv[1])[: len(done) - FIRED_LIMIT]:
            del done[old]
    return True


Rule = tuple[list[Fired], int | None]
# the events that change what a rule looks at (besides time)
RULE_EVENTS: Final = {
    "cart": frozenset({"Product Added", "Product Removed", "Order Completed"}),
    "browse": frozenset({"Product Viewed", "Product Added"}),
    "churn": frozenset({"Order Completed"}),
    "milestones": frozenset({"Order Completed"}),
}
DATE_TRAITS: Final = frozenset({"birthday", "timezone"})


def _cart(config: TriggerConfig, state: dict[str, Any], now: int) -> Rule:
    after = config.cart_after_ms
    current = cart(state)
    if after is None or current is None:
        return [], None
    last = max(e[0] for e in state["cart"])
    due = last + after
    if now < due:
        return [], due
    payload = {k: current[k] for k in ("cart_id", "items", "value")}
    reason = {"last_cart_activity_at": iso(last), "after_minutes": after // 60_000}
    return [Fired("cart_abandoned", f"cart@{last}", due, reason, payload)], None


def _browse(config: TriggerConfig, state: dict[str, Any], now: int) -> Rule:
    after = config.browse_after_ms
    if after is None:
        return [], None
    views: dict[str, list[int]] = state.get("browse") or {}
    fired, dues = [], []
    for product, (count, last) in sorted(views.items()):
        if count < config.browse_views:
            continue
        due = last + after
        if now < due:
            dues.append(due)
            continue
        reason = {"product_id": product, "views": count, "last_view_at": iso(last)}
        fired.append(Fired("browse_abandoned", f"{product}@{last}", due, reason, reason))
    return fired, min(dues) if dues else None


def track_browse(state: dict[str, Any], name: str, props: Mapping[str, Any], ts: int) -> None:
    """Product views since the product was last added to a cart (for browse_abandoned)."""
    product = props.get("product_id") or props.get("sku")
    if product is None:
        return
    views: dict[str, list[int]] = state.setdefault("browse", {})
    key = str(product)
    if name == "Product Viewed":
        count, last = views.get(key, [0, 0])
        views[key] = [count + 1, max(last, ts)]
        trim_browse(views)
    elif name == "Product Added":
        views.pop(key, None)


def _churn(config: TriggerConfig, state: dict[str, Any], now: int) -> Rule:
    if not config.churn:
        return [], None
    summary = orders_summary(state)
    gap_days = summary["mean_days_between_orders"]
    if summary["order_count"] < config.churn_min_orders or gap_days is None:
        return [], None
    last = state["order_stats"]["last"]
    expected = max(int(config.churn_factor * gap_days * DAY_MS), config.churn_floor_ms or 0)
    due = last + expected
    if now < due:
        return [], due
    reason = {
        "expected_gap_days": round(expected / DAY_MS, 2),
        "actual_gap_days": round((now - last) / DAY_MS, 2),
        "mean_days_between_orders": gap_days,
        "factor": config.churn_factor,
    }
    payload = {"ltv": summary["revenue"], "last_order_at": iso(last), **reason}
    return [Fired("churn_risk", f"after-order@{last}", due, reason, payload)], None


def _milestones(config: TriggerConfig, state: dict[str, Any], now: int) -> Rule:
    done = state.get("fired")
    if done is not None and all(key in done for key in config.milestone_keys):
        return [], None  # each has fired (check would drop them all): no walk of the orders
    orders = sorted(order for _oid, order in state["orders"].items())  # on an order event
    fired = []
    for n in config.milestone_orders:
        if len(orders) >= n:
            at = orders[n - 1][0]
            reason = {"milestone": "orders", "threshold": n, "order_count": len(orders)}
            fired.append(Fired("milestone", _orders_occasion(n), at, reason, reason))
    running = 0.0
    for ts, revenue, _msgid in orders:
        before, running = running, running + revenue
        for threshold in config.milestone_revenue:
            if before < threshold <= running:
                reason = {"milestone": "revenue", "threshold": threshold, "revenue": running}
                fired.append(Fired("milestone", _revenue_occasion(threshold), ts, reason, reason))
    return fired, None


def _dates(config: TriggerConfig, state: dict[str, Any], now: int) -> Rule:
    subject = Subject(state, set(), now)
    fired, dues = [], []
    if config.birthday:
        if subject.birthday_today():
            year = datetime.fromtimestamp(now / 1000, UTC).year
            reason = {"milestone": "birthday", "birthday": subject.field(["traits", "birthday"])}
            fired.append(Fired("milestone", f"birthday:{year}", now, reason, reason))
        midnight = subject.next_midnight()
        if midnight is not None:
            dues.append(midnight)
    if config.anniversary and state["order_stats"]["n"]:
        years = subject.since("years_since_first_order")
        if years and years >= 1:
            first = state["order_stats"]["first"]
            reason = {"milestone": "anniversary", "years": int(years), "first_order_at": iso(first)}
            fired.append(Fired("milestone", f"anniversary:{int(years)}", now, reason, reason))
        due = subject.since_due("years_since_first_order", "gte", 1)
        if due is not None:
            dues.append(due)
    return fired, min(dues) if dues else None


RULES: Final[dict[str, Callable[[TriggerConfig, dict[str, Any], int], Rule]]] = {
    "cart": _cart,
    "browse": _browse,
    "churn": _churn,
    "milestones": _milestones,
    "dates": _dates,
}
