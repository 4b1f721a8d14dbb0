"""Profile benchmark: identity + profile fold, alone and as the validate → identity → profile
pipeline on the embedded broker, each with a baseline measured in the same run.

- ``fold``: ``ProfileBook.ingest`` (identity lookup, merges, profile fold) over simulator traffic
  (web, app, e-mail, store), events already canonical; baseline: orjson-decoding the same events.
- ``pipeline``: the three workers in this process on the real broker (collector excluded), all
  their CPU counted from start until every event and merge is in the profiles; baseline: a raw
  confluent-kafka consume + decode of the same raw topic (the runtime benchmark's limit).

    python -m bench.profiles --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.pipeline import pipeline_done, produce_events, start_worker, wait_until
from bench.runtime import cluster, measure_raw, save_results
from wayline.config.workspace import DEMO_CONFIG
from wayline.connectors.simulator import Simulator
from wayline.profiles.book import ProfileBook
from wayline.schemas.errors import InvalidEvent
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.timestamps import parse_timestamp
from wayline.schemas.topics import Topics
from wayline.segments.compiler import Compiled
from wayline.segments.triggers import TriggerConfig
from wayline.streams.admin import ensure_topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.memory import tune_garbage_collector
from wayline.streams.registry import WorkerContext, default_registry, store_topics
from wayline.streams.task import ClockMode
from wayline.streams.worker import WorkerOptions

CHANNELS = {s.name: s.channel for s in DEMO_CONFIG.sources}


def simulate(
    count: int, seed: int = 7, start: datetime = datetime(2026, 11, 1, tzinfo=UTC)
) -> list[tuple[str, dict[str, Any]]]:
    """``count`` raw simulator events (source, event), on a clock from ``start`` that runs at
    10 s per step."""
    simulator = Simulator(seed=seed, shoppers=max(500, count // 10), sessions_per_s=2.0)
    at = start
    out: list[tuple[str, dict[str, Any]]] = []
    while len(out) < count:
        out += simulator.due(at)
        at += timedelta(seconds=10)
    return out[:count]


def canonical(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The events as the validate step writes them, each received 20 ms after it was sent (so
    event times follow the simulator's clock, as they would live)."""
    out = []
    fallback = datetime(2026, 11, 1, tzinfo=UTC)
    for i, (source, raw) in enumerate(events):
        received = (parse_timestamp(raw.get("sentAt")) or fallback) + timedelta(milliseconds=20)
        origin = Origin(received, f"bench-{i}", source, CHANNELS[source])
        try:
            out.append(normalize_event(orjson.loads(orjson.dumps(raw)), origin))
        except InvalidEvent:
            continue
    return out


def measure_fold(events: list[dict[str, Any]]) -> dict[str, Any]:
    encoded = [orjson.dumps(e) for e in events]
    cpu = time.process_time()
    for value in encoded:
        orjson.loads(value)
    decode_s = time.process_time() - cpu
    book = ProfileBook()
    cpu = time.process_time()
    for event in events:
        book.ingest(event)
    fold_s = time.process_time() - cpu
    return {
        "events": len(events),
        "profiles": len(book.states),
        "merges": sum(1 for e in book.log if e.kind == "merge"),
        "fold_cpu_s": fold_s,
        "decode_cpu_s": decode_s,
    }


def measure_pipeline(
    kafka: KafkaConfig,
    events: list[tuple[str, dict[str, Any]]],
    segments: Compiled | None = None,
    triggers: TriggerConfig | None = None,
    clock: ClockMode = "live",
) -> dict[str, Any]:
    """validate → identity → profile over ``events`` (with ``segments`` and ``triggers`` when
    given; in replay mode with event-time order, released 1 s after the input stops); all
    worker CPU of this process, beside a raw consume of the same topic."""
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}", partitions=4)
    registry = default_registry()
    ensure_topics(kafka, topics.specs(store_topics(registry)))
    produce_events(kafka, topics.raw, ((s, CHANNELS[s], e) for s, e in events))
    raw = measure_raw(kafka, topics.raw, topics.partitions, len(events))
    with tempfile.TemporaryDirectory() as state:
        options = WorkerOptions(
            batch_size=2_000,
            state_dir=Path(state),
            consumer_overrides={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
            clock=clock,
        )
        context = WorkerContext(
            topics=topics,
            kafka=kafka,
            options=options,
            segments=segments,
            triggers=triggers,
            reorder_idle_ms=1_000,
        )
        workers = [registry[n].create(context) for n in ("validate", "identity", "profile")]
        cpu, wall = time.process_time(), time.monotonic()
        threads = [start_worker(worker, {}) for worker in workers]
        try:
            wait_until(lambda: pipeline_done(workers, len(events)), 600)
            result: dict[str, Any] = {
                "cpu_s": time.process_time() - cpu,
                "wall_s": time.monotonic() - wall,
            }
        finally:
            for worker in workers:
                worker.stop()
            for thread in threads:
                thread.join(60)
        validate, identity, profile = (w.stats() for w in workers)
    result |= {
        "events": len(events),
        "validated": validate.events_out,
        "dead_lettered": validate.dead_lettered,
        "profile_steps": profile.steps,
        "identity_steps": identity.steps,
    }
    return {"pipeline": result, "raw": raw}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold-events", type=int, default=100_000)
    parser.add_argument("--pipeline-events", type=int, default=50_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    tune_garbage_collector()  # as every Wayline worker process does

    fold = measure_fold(canonical(simulate(args.fold_events)))
    with cluster() as kafka:
        measured = measure_pipeline(kafka, simulate(args.pipeline_events, seed=11))
    pipe, raw = measured["pipeline"], measured["raw"]
    fold_rate = round(fold["events"] / fold["fold_cpu_s"])
    decode_rate = round(fold["events"] / fold["decode_cpu_s"])
    pipe_rate = round(pipe["events"] / pipe["cpu_s"])
    raw_rate = round(raw["events"] / raw["cpu_s"]) if raw["cpu_s"] else None
    results = {
        "benchmark": "profiles",
        "fold_events_per_cpu_s": fold_rate,
        "decode_events_per_cpu_s": decode_rate,
        "fold_vs_decode": round(fold_rate / decode_rate, 3),
        "pipeline_events_per_cpu_s": pipe_rate,
        "raw_consume_events_per_cpu_s": raw_rate,
        "pipeline_vs_raw": round(pipe_rate / raw_rate, 3) if raw_rate else None,
        "details": {"fold": fold, "pipeline": pipe, "raw": raw},
    }
    save_results("profiles", results)
    if args.json:
        print(json.dumps(results))
        return
    print(f"fold: {fold_rate:,} events per CPU-second (decode alone: {decode_rate:,})")
    print(f"pipeline: {pipe_rate:,} events per CPU-second (raw consume: {raw_rate:,})")


if __name__ == "__main__":
    main()
