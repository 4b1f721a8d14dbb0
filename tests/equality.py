"""The dry run as the oracle of the live pipeline: a replay config that exercises segments,
windows and every trigger, a log re-sent and shuffled the way clients do, and the comparison of
what the dry run and the pipeline put on the topics."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import orjson

from journeys import canonical
from wayline.config.workspace import WaylineConfig, parse_config
from wayline.profiles.view import iso
from wayline.segments.timeline import Timeline

CONFIG_YAML = """
clock: replay
reorder: {window: 30m, idle: 2s}
segments:
  - {name: browsers, notify: true,
     rule: {performed: {event: Product Viewed, at_least: 3, within: 14d}}}
  - {name: buyers, notify: true, rule: {computed.order_count: {gte: 1}}}
  - {name: repeat, notify: true, rule: {computed.order_count: {gte: 2}}}
  - {name: big_spenders, rule: {computed.revenue: {gte: 150}}}
  - {name: lapsed, notify: true,
     rule: {all: [{computed.order_count: {gte: 1}}, {days_since_last_order: {gt: 45}}]}}
  - {name: engaged, rule: {performed: {event: Email Opened, at_least: 2, within: 30d}}}
  - {name: big_cart, notify: true, rule: {computed.cart.value: {gte: 100}}}
  - {name: loyal, rule: {lifecycle_stage: {in: [retention, advocacy]}}}
  - {name: opted_out, rule: {consent.email: {eq: false}}}
  - {name: shoe_fans, rule: {computed.favorite_category: {eq: shoes}}}
  - {name: browsing_buyers, notify: true,
     rule: {all: [{in_segment: browsers}, {in_segment: buyers}]}}
  - {name: recent_viewers, rule: {computed.event_counts.Product Viewed.7d: {gte: 2}}}
triggers:
  cart_abandoned: {after: 60m}
  browse_abandoned: {views: 2, after: 4h}
  milestones: {orders: [1, 3]}
  churn_risk: {factor: 2.0, min_orders: 2, floor: 14d}
"""
CONFIG = parse_config(CONFIG_YAML)


def resent_and_shuffled(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """10 % of events moved to a place within 10 minutes of their event time; 5 % sent again
    a little later (a client retrying: up to 200 events after the first copy)."""
    keyed = []
    for i, event in enumerate(events):
        when = datetime.fromisoformat(event["timestamp"])
        if rng.random() < 0.10:
            when += timedelta(seconds=rng.randrange(-600, 600))
        keyed.append((when, i, event))
    out = [e for _, _, e in sorted(keyed, key=lambda k: (k[0], k[1]))]
    for position in sorted(rng.sample(range(len(out)), len(out) // 20), reverse=True):
        out.insert(min(len(out), position + rng.randrange(1, 200)), out[position])
    return out


def dry_run(config: WaylineConfig, log: list[dict[str, Any]]) -> dict[str, Any]:
    timeline = Timeline(config.compiled_segments(), config.triggers.config())
    timeline.run([canonical(e) for e in log])
    transitions = Counter(
        (h.profile_id, *h.what.split(" ", 1), _iso(h.at_ms))
        for h in timeline.happenings
        if h.what.startswith(("enter ", "exit "))
    )
    return {
        "transitions": transitions,
        "triggers": Counter(
            orjson.dumps(t, option=orjson.OPT_SORT_KEYS) for t in timeline.cloud_events
        ),
        "profiles": {pid: comparable(d) for pid, d in timeline.documents().items()},
    }


def _iso(ms: int) -> str:
    return iso(ms) or ""


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without ``version``, which counts the records a worker applied."""
    return {k: v for k, v in doc.items() if k != "version"}


def differences(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    out = []
    for what in ("transitions", "triggers"):
        missing = expected[what] - got[what]
        extra = got[what] - expected[what]
        out += [f"{what}: dry run only: {m!r}" for m in list(missing)[:5]]
        out += [f"{what}: live only: {m!r}" for m in list(extra)[:5]]
        if missing or extra:
            out.append(f"{what}: {sum(missing.values())} missing, {sum(extra.values())} extra")
    want, have = expected["profiles"], got["profiles"]
    if sorted(want) != sorted(have):
        out.append(f"profiles: ids differ: {sorted(set(want) ^ set(have))[:5]}")
    wrong = [pid for pid in want if pid in have and want[pid] != have[pid]]
    out += [f"profile {pid}: dry run {want[pid]!r} live {have[pid]!r}" for pid in wrong[:2]]
    if wrong:
        out.append(f"profiles: {len(wrong)} of {len(want)} differ")
    return out
