"""Segment benchmark: evaluation cost per event with 10, 100 and 1,000 segments.

Simulator traffic (the profile benchmark's mix) is resolved and folded once per contender, with
segment evaluation and triggers after every event (``segments.engine.after_event``), against the
same run without segments (the baseline): ``us_per_event_N`` is the extra time per event that N
segments cost. The segments are generated: a realistic spread of trait and computed-trait
comparisons, ``performed`` counts with and without windows and filters, and nested all/any/not.

    python -m bench.segments --json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from bench.profiles import canonical, simulate
from bench.runtime import RESULTS
from wayline.profiles.book import ProfileBook
from wayline.profiles.state import apply_event, empty_state, epoch_ms
from wayline.segments.compiler import Compiled, SegmentDef, compile_segments
from wayline.segments.engine import after_event
from wayline.segments.triggers import TriggerConfig
from wayline.streams.memory import tune_garbage_collector

EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Email Opened",
          "Email Link Clicked", "Products Searched", "Checkout Started", "Page Viewed"]  # fmt: skip
TRIGGERS = TriggerConfig.from_mapping(
    {"cart_abandoned": {"after": "60m"}, "churn_risk": {}, "milestones": {"orders": [1, 3]}}
)


def condition(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth < 2 and roll < 0.25:
        kind = rng.choice(["all", "any"])
        return {kind: [condition(rng, depth + 1) for _ in range(rng.randint(2, 3))]}
    if roll < 0.35:
        return {"not": condition(rng, depth + 1)}
    if roll < 0.65:
        body: dict[str, Any] = {"event": rng.choice(EVENTS), "at_least": rng.randint(1, 3)}
        if rng.random() < 0.6:
            body["within"] = f"{rng.choice([1, 7, 30, 90])}d"
        if rng.random() < 0.2:
            body["where"] = {"properties.category": rng.choice(["shoes", "bags", "socks"])}
        return {"performed": body}
    if roll < 0.85:
        field = rng.choice(["computed.revenue", "computed.order_count", "computed.aov"])
        return {field: {"gte": rng.choice([1, 2, 50, 100, 500])}}
    if roll < 0.95:
        return {"lifecycle_stage": {"in": rng.sample(["awareness", "consideration", "conversion",
                                                      "retention", "advocacy"], 2)}}  # fmt: skip
    return {"days_since_last_order": {"gte": rng.choice([7, 30, 60])}}


def segments(count: int, seed: int = 3) -> Compiled:
    rng = random.Random(seed)
    defs = [SegmentDef(f"s{i}", condition(rng), 1, rng.random() < 0.1) for i in range(count)]
    return compile_segments(defs)


def run(events: list[dict[str, Any]], compiled: Compiled | None) -> tuple[float, int]:
    """CPU seconds for resolve + fold (+ evaluation when ``compiled``), and transitions seen."""
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
        counted = apply_event(state, event, list(resolution.linked))
        if compiled is not None:
            now = epoch_ms(str(event["timestamp"]))
            outcome = after_event(compiled, TRIGGERS, pid, state, event, now, counted)
            transitions += len(outcome.transitions)
    return time.process_time() - cpu, transitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    tune_garbage_collector()
    events = canonical(simulate(args.events))
    results: dict[str, Any] = {"benchmark": "segments", "events": len(events)}
    baseline, _ = run(events, None)
    empty, _ = run(events, compile_segments([]))
    results["baseline_us_per_event"] = round(baseline / len(events) * 1e6, 2)
    results["engine_us_per_event_0"] = round((empty - baseline) / len(events) * 1e6, 2)
    for count in (10, 100, 1000):
        spent, transitions = run(events, segments(count))
        results[f"us_per_event_{count}"] = round((spent - baseline) / len(events) * 1e6, 2)
        results[f"transitions_{count}"] = transitions
    results["ratio_1000_vs_10"] = round(
        results["us_per_event_1000"] / results["us_per_event_10"], 2
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "segments.json").write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
