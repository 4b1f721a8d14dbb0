"""Segment benchmark: evaluation cost per event with 10, 100 and 1,000 segments, and the
profile pipeline with 100 segments and the triggers on the embedded broker.

Simulator traffic (the profile benchmark's mix) is resolved and folded once per contender, with
segments and triggers after every event (``segments.engine.on_event``), against the same run
without them (the baseline): ``us_per_event_N`` is the extra time per event that N segments and
the triggers cost. The segments are drawn from the kinds marketers build (``TEMPLATES``:
engagement counts in a window, category buyers, revenue tiers, VIPs, lapsed buyers, cart
abandoners, lifecycle stages, days since the last order, e-mail engagers who never bought,
browsers who never bought, country + recent order, favourite category, consented clickers) with
their parameters drawn at random, as a workspace with many campaigns holds many variations of
each. Besides the cost, the output reports how many segments an event made the engine look at
(``evaluations_per_event_N``), how many transitions it produced and the mean share of profiles
per segment, so the work can be compared with its result.

``pipeline_events_per_cpu_s``: validate → identity → profile + segments + triggers, 100 segments,
as threads of this process on the embedded broker, all CPU of the process; beside the same
pipeline without segments and triggers and a raw consume of the same topic, in the same run.

    python -m bench.segments --json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

from bench.profiles import canonical, measure_pipeline, simulate
from bench.runtime import cluster, save_results
from wayline.profiles.book import ProfileBook
from wayline.profiles.state import apply_event, empty_state, epoch_ms
from wayline.segments.codegen import Check
from wayline.segments.compiler import Compiled, SegmentDef, compile_segments
from wayline.segments.engine import on_event
from wayline.segments.subject import Subject
from wayline.segments.triggers import TriggerConfig
from wayline.streams.memory import tune_garbage_collector

ENGAGEMENT = ["Product Viewed", "Page Viewed", "Email Opened", "Email Link Clicked",
              "Products Searched", "Checkout Started", "Product Added"]  # fmt: skip
CATEGORIES = ["shoes", "apparel", "outdoor", "home", "beauty"]
COUNTRIES = ["US", "GB", "DE", "FR"]
STAGES = ["awareness", "consideration", "conversion", "retention", "advocacy"]
TRIGGERS = TriggerConfig.from_mapping(
    {"cart_abandoned": {"after": "60m"}, "churn_risk": {}, "milestones": {"orders": [1, 3]}}
)


def _performed(event: str, **body: Any) -> dict[str, Any]:
    return {"performed": {"event": event, **body}}


def _window(rng: random.Random) -> str:
    return f"{rng.choice([1, 7, 14, 30, 60, 90])}d"


def _order(rng: random.Random) -> dict[str, Any]:
    return _performed("Order Completed", at_least=rng.choice([1, 2, 3]), within=_window(rng))


# the kinds of segment marketers build, each with its parameters drawn at random: a workspace
# with 1,000 segments holds many variations of these (per campaign, country, category, window)
TEMPLATES: list[Callable[[random.Random], dict[str, Any]]] = [
    lambda r: _performed(r.choice(ENGAGEMENT), at_least=r.choice([2, 3, 5, 10]), within=_window(r)),
    lambda r: _performed(
        "Order Completed",
        where={"properties.category": r.choice(CATEGORIES)},
        at_least=r.choice([1, 2]),
    ),
    lambda r: {"computed.revenue": {"gte": r.choice([100, 250, 500, 1000])}},
    lambda r: {"all": [{"computed.revenue": {"gte": r.choice([200, 500])}}, _order(r)]},
    lambda r: {
        "all": [
            _performed("Order Completed", at_least=1),
            {"not": _performed("Order Completed", within=_window(r))},
        ]
    },
    lambda r: {
        "all": [
            _performed("Product Added", within=f"{r.choice([1, 2, 7])}d"),
            {"not": _performed("Order Completed", within="1d")},
        ]
    },
    lambda r: {"lifecycle_stage": {"eq": r.choice(STAGES)}},
    lambda r: {"days_since_last_order": {"gte": r.choice([30, 60, 90, 180])}},
    lambda r: {"computed.order_count": {"gte": r.choice([2, 3, 5])}},
    lambda r: {
        "all": [
            _performed("Email Opened", at_least=r.choice([2, 3]), within="30d"),
            {"computed.order_count": {"eq": 0}},
        ]
    },
    lambda r: {
        "all": [
            _performed("Product Viewed", at_least=r.choice([3, 5])),
            {"not": _performed("Order Completed")},
        ]
    },
    lambda r: {"all": [{"traits.country": {"eq": r.choice(COUNTRIES)}}, _order(r)]},
    lambda r: {
        "any": [
            {"computed.favorite_category": {"eq": r.choice(CATEGORIES)}},
            _performed(
                "Product Viewed",
                where={"properties.category": r.choice(CATEGORIES)},
                at_least=r.choice([2, 3]),
            ),
        ]
    },
    lambda r: {
        "all": [
            {"consent.email": {"ne": False}},
            _performed("Email Link Clicked", within=_window(r)),
        ]
    },
]


def segments(count: int, seed: int = 3) -> Compiled:
    rng = random.Random(seed)
    defs = [
        SegmentDef(f"s{i}", rng.choice(TEMPLATES)(rng), 1, rng.random() < 0.1) for i in range(count)
    ]
    return compile_segments(defs)


def run(events: list[dict[str, Any]], compiled: Compiled | None) -> tuple[float, int, float]:
    """CPU seconds for resolve + fold (+ evaluation when ``compiled``), the transitions seen and
    the mean share of profiles in a segment at the end."""
    book = ProfileBook()
    transitions = 0
    cpu = time.process_time()
    for event in events:
        resolution = book.resolve(event)
        for loser, _survivor in resolution.merges:
            book.states.pop(loser, None)
        pid = resolution.profile_id
        if pid is None:
            continue
        state = book.states.get(pid)
        if state is None:
            state = book.states[pid] = empty_state()
        if compiled is None:
            apply_event(state, event, list(resolution.linked))
            continue
        now = epoch_ms(str(event["timestamp"]))
        _counted, outcome = on_event(compiled, TRIGGERS, state, event, list(resolution.linked), now)
        transitions += len(outcome.transitions)
    spent = time.process_time() - cpu
    held = sum(len(state.get("segments") or ()) for state in book.states.values())
    count = len(compiled.segments) if compiled is not None else 0
    share = held / (len(book.states) * count) if count and book.states else 0.0
    return spent, transitions, share


def evaluations(events: list[dict[str, Any]], compiled: Compiled) -> int:
    """How many segment evaluations the events cause (a separate, untimed pass)."""
    seen = [0]
    for seg in compiled.segments:
        seg.check = _counted(seg.check, seen)
    run(events, compiled)
    return seen[0]


def _counted(check: Check, seen: list[int]) -> Check:
    def counted(subject: Subject) -> tuple[bool, int | None]:
        seen[0] += 1
        return check(subject)

    return counted


def measure_pipelines(count: int) -> dict[str, Any]:
    """The profile pipeline on the embedded broker with 100 segments and the triggers, and
    without segments or triggers (the baseline), and the same in replay mode (events put in
    event-time order before identity), each on its own topics; all worker CPU."""
    traffic = simulate(count, seed=11)
    with cluster() as kafka:
        plain = measure_pipeline(kafka, traffic)
        full = measure_pipeline(kafka, traffic, segments(100), TRIGGERS)
        replayed = measure_pipeline(kafka, traffic, segments(100), TRIGGERS, clock="replay")
    rate = round(count / full["pipeline"]["cpu_s"])
    replay_rate = round(count / replayed["pipeline"]["cpu_s"])
    plain_rate = round(count / plain["pipeline"]["cpu_s"])
    raw_rate = round(full["raw"]["events"] / full["raw"]["cpu_s"])
    steps = full["pipeline"]["profile_steps"]
    return {
        "pipeline_events_per_cpu_s": rate,
        "pipeline_without_segments_events_per_cpu_s": plain_rate,
        "pipeline_replay_events_per_cpu_s": replay_rate,
        "pipeline_replay_vs_live": round(replay_rate / rate, 3),
        "raw_consume_events_per_cpu_s": raw_rate,
        "pipeline_vs_without_segments": round(rate / plain_rate, 3),
        "pipeline_vs_raw": round(rate / raw_rate, 3),
        "pipeline_transitions": steps.get("segment_transitions", 0),
        "pipeline_triggers": steps.get("triggers_fired", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--pipeline-events", type=int, default=30_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    tune_garbage_collector()
    events = canonical(simulate(args.events))
    results: dict[str, Any] = {"benchmark": "segments", "events": len(events)}
    baseline, _, _ = run(events, None)
    empty, _, _ = run(events, compile_segments([]))
    results["baseline_us_per_event"] = round(baseline / len(events) * 1e6, 2)
    results["engine_us_per_event_0"] = round((empty - baseline) / len(events) * 1e6, 2)
    for count in (10, 100, 1000):
        spent, transitions, share = run(events, segments(count))
        results[f"us_per_event_{count}"] = round((spent - baseline) / len(events) * 1e6, 2)
        results[f"transitions_per_event_{count}"] = round(transitions / len(events), 2)
        looked_at = evaluations(events, segments(count))
        results[f"evaluations_per_event_{count}"] = round(looked_at / len(events), 2)
        results[f"mean_member_share_{count}"] = round(share, 3)
    results["ratio_1000_vs_10"] = round(
        results["us_per_event_1000"] / results["us_per_event_10"], 2
    )
    if args.pipeline_events:
        results |= measure_pipelines(args.pipeline_events)
    save_results("segments", results)
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
