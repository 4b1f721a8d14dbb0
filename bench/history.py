"""History benchmark: the profile worker's cost per event as a customer's history grows.

A loyal customer's every event must not get slower: the profile step (fold, 100 segments,
triggers, the profile document, the stores, the changelog records of the batch) is driven
in-process on RocksDB stores, exactly as the worker drives it between a poll and a commit, for
profiles that already hold 10, 100 and 1,000 past events (the baseline is the 10-event
profiles in the same run). Each timed batch carries one new event for each profile — a live
batch rarely holds two of one customer's events — so every event pays for reading and writing
its profile once. Besides the CPU per event, the output reports the changelog bytes the batch
produces per event (what the broker has to carry, and what a restore reads back).

Three contenders in one run, each in its own process: this tree with the compiled core, the
same tree on the reference core (``WAYLINE_NATIVE=0``), and a baseline commit on the reference
core (``--baseline``, default: main before the message ids moved out of the state).

    python -m bench.history --json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.pipeline import ROOT, baseline_tree, run_child
from bench.runtime import save_results
from bench.segments import TRIGGERS, segments
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.topics import Topics
from wayline.streams.envelope import Envelope
from wayline.streams.memory import tune_garbage_collector
from wayline.streams.profile import ProfileStep
from wayline.streams.store import RocksStore
from wayline.streams.task import StoreView, Task, TaskContext

STORES = ("profiles", "forwards", "parked", "timers")
START = datetime(2025, 6, 1, tzinfo=UTC)
CATEGORIES = ["shoes", "apparel", "outdoor", "home", "beauty"]
BASELINE = "3300d82"  # main before the message ids moved out of the state


def _event(rng: random.Random, pid: str, at: datetime) -> dict[str, Any]:
    """One canonical event of a shopper, as the identity worker hands it on."""
    roll = rng.random()
    product = f"p{rng.randrange(400)}"
    category = rng.choice(CATEGORIES)
    raw: dict[str, Any] = {"type": "track", "userId": pid, "messageId": str(uuid.uuid4())}
    if roll < 0.35:
        raw = {**raw, "type": "page", "name": "Home", "properties": {"path": "/"}}
    elif roll < 0.65:
        props = {"product_id": product, "category": category, "price": 20.0}
        raw |= {"event": "Product Viewed", "properties": props}
    elif roll < 0.8:
        props = {"product_id": product, "category": category, "price": 20.0, "quantity": 1}
        raw |= {"event": "Product Added", "properties": props}
    elif roll < 0.88:
        order = {"product_id": product, "category": category, "price": 20.0, "quantity": 1}
        props = {"order_id": str(uuid.uuid4()), "revenue": 20.0, "products": [order]}
        raw |= {"event": "Order Completed", "properties": props}
    else:
        raw |= {"event": "Email Opened", "properties": {"campaign": "weekly"}}
    raw["timestamp"] = at.isoformat()
    origin = Origin(at + timedelta(milliseconds=20), "bench", "web", "web")
    event = normalize_event(raw, origin)
    event["profile_id"] = pid
    event["linked"] = [["user_id", pid]]
    return event


def histories(profiles: int, past: int, seed: int) -> tuple[list[list[dict[str, Any]]], datetime]:
    """``past`` events per profile spread over a year before the timed events, and the moment
    the timed events start."""
    rng = random.Random(seed)
    out = []
    for p in range(profiles):
        pid = f"h{past}-{p}"
        times = sorted(START + timedelta(seconds=rng.randrange(365 * 86_400)) for _ in range(past))
        out.append([_event(rng, pid, at) for at in times])
    return out, START + timedelta(days=366)


@contextmanager
def profile_task(directory: Path, partition: int = 0) -> Iterator[Task]:
    """A profile worker's task on RocksDB stores in ``directory``, replaying on stream time."""
    views = {name: StoreView(name, RocksStore(directory / name)) for name in STORES}
    task = Task(
        partition, views, {name: f"bench-{name}-changelog" for name in STORES}, clock="replay"
    )
    try:
        yield task
    finally:
        task.close()


def run_batch(step: ProfileStep, task: Task, events: list[dict[str, Any]]) -> int:
    """One batch as the worker runs it; the changelog bytes it produced."""
    ctx = TaskContext(task, 0)
    for offset, event in enumerate(events):
        value = orjson.dumps(event)
        task.advance(int(datetime.fromisoformat(event["timestamp"]).timestamp() * 1000))
        key = str(event["profile_id"]).encode()
        message = Envelope("events.resolved", 0, offset, key, value, task.stream_time_ms)
        step.process(message, ctx)
    step.end_batch(ctx)
    commit = task.prepare_commit()
    size = sum(len(r.value or b"") + len(r.key or b"") for r in commit.records)
    task.finish_commit(commit, {})
    return size


@dataclass
class _Level:
    """One history length: its profiles' stores, warmed with their past, and its timed batches."""

    past: int
    step: ProfileStep
    task: Task
    batches: list[list[dict[str, Any]]]
    stored: list[int]
    spent: float = 0.0
    written: int = 0


def _warm(past: int, profiles: int, rounds: int, seed: int, task: Task) -> _Level:
    step = ProfileStep(Topics(), segments(100), TRIGGERS)
    history, start = histories(profiles, past, seed)
    for at in range(0, past, 50):  # the past, 50 events of each profile per batch
        run_batch(step, task, [e for h in history for e in h[at : at + 50]])
    rng = random.Random(seed + 1)
    batches = [
        [
            _event(rng, f"h{past}-{p}", start + timedelta(minutes=r, seconds=p))
            for p in range(profiles)
        ]
        for r in range(rounds)
    ]
    stored = [len(v) for _k, v in task.views["profiles"].store.items(b"h")]
    return _Level(past, step, task, batches, stored)


def measure(pasts: list[int], profiles: int, rounds: int, seed: int) -> list[dict[str, Any]]:
    """Every level's timed batches taken in turns (round 1 of each level, then round 2, …), so
    a noisy neighbour slows all levels alike and their ratios hold."""
    with ExitStack() as stack:
        levels = []
        for past in pasts:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            task = stack.enter_context(profile_task(tmp))
            levels.append(_warm(past, profiles, rounds, seed, task))
        tune_garbage_collector()  # as a worker process does before it processes
        for r in range(rounds):
            for level in levels:
                cpu = time.process_time()
                level.written += run_batch(level.step, level.task, level.batches[r])
                level.spent += time.process_time() - cpu
    events = profiles * rounds
    return [
        {
            "past_events": level.past,
            "events": events,
            "us_per_event": round(level.spent / events * 1e6, 1),
            "changelog_bytes_per_event": round(level.written / events),
            "stored_profile_bytes": round(sum(level.stored) / max(1, len(level.stored))),
        }
        for level in levels
    ]


CONTENDERS = (("current", None, "1"), ("reference", None, "0"), ("baseline", "ref", "0"))


def child(core: str) -> None:
    """One contender (``bench.historychild`` chose its core): its levels as one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--past", default="10,100,1000")
    parser.add_argument("--profiles", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    levels = measure([int(p) for p in args.past.split(",")], args.profiles, args.rounds, 5)
    print(json.dumps({"core": core, "levels": levels}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--past", default="10,100,1000", help="past events per profile")
    parser.add_argument("--profiles", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20, help="timed batches")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"baseline": args.baseline, "contenders": {}}
    own = ["--past", args.past, "--profiles", str(args.profiles), "--rounds", str(args.rounds)]
    src = ROOT / "src"
    for name, ref, native in CONTENDERS:
        with baseline_tree(args.baseline) if ref else nullcontext(src) as path:
            found = run_child(
                Path(sys.executable),
                path,
                own,
                {"WAYLINE_NATIVE": native},
                module="bench.historychild",
            )
        base = found["levels"][0]["us_per_event"]
        for level in found["levels"]:
            level["ratio_to_first"] = round(level["us_per_event"] / base, 2)
        results["contenders"][name] = found
    save_results("history", results)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, found in results["contenders"].items():
        for level in found["levels"]:
            print(f"{name:>9} ({found['core']}): {level}")


if __name__ == "__main__":
    main()
