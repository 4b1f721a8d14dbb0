"""The parent of ``bench.pipeline``: traffic, the broker, the children in turn, the baselines
and the report (this module may import this tree's ``wayline``; the children do not)."""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TopicPartition

from bench.pipeline import PARTITIONS, QUIX_PYTHON, ROOT, baseline_tree, run_child
from bench.profiles import CHANNELS, simulate
from bench.runtime import RESULTS, cluster, measure_raw, save_results
from bench.segments import TEMPLATES
from wayline.streams.clients import KafkaConfig

TRIGGERS = {"cart_abandoned": {"after": "60m"}, "churn_risk": {}, "milestones": {"orders": [1, 3]}}


def rules_file(folder: Path, count: int) -> Path:
    """``count`` segments drawn as ``bench.segments`` draws them (seed 3), and the triggers;
    0 means neither segments nor triggers."""
    rng = random.Random(3)
    segments = [
        {"name": f"s{i}", "rule": rng.choice(TEMPLATES)(rng), "notify": rng.random() < 0.1}
        for i in range(count)
    ]
    path = folder / f"rules-{count}.json"
    spec = {"segments": segments, "triggers": TRIGGERS, "with_segments": count > 0}
    path.write_bytes(orjson.dumps(spec))
    return path


def traffic_file(folder: Path, events: int) -> Path:
    """The run's traffic, simulated up to about now: live, the collector receives an event as
    it is sent, so its arrival-time windows (the identity worker's dedupe) run on the clock
    they would in production, not days behind it."""
    path = folder / "traffic.jsonl"
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    lines = [orjson.dumps([s, CHANNELS[s], e]) for s, e in simulate(events, 11, start)]
    path.write_bytes(b"\n".join(lines))
    return path


def count_records(kafka: KafkaConfig, prefix: str, idle_s: float = 3.0) -> dict[str, int]:
    """Every record of the run's topics, read back from the beginning (the embedded broker's
    high watermark under-reports, so the records are counted, not the offsets)."""
    consumer = kafka.consumer(f"count-{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 50})
    names = [t for t in consumer.list_topics(timeout=10).topics if t.startswith(f"{prefix}.")]
    metadata = consumer.list_topics(timeout=10).topics
    consumer.assign([TopicPartition(t, p, 0) for t in names for p in metadata[t].partitions])
    counts: Counter[str] = Counter()
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        batch = consumer.consume(10_000, 0.5)
        for message in batch:
            if message.error() is None:
                counts[(message.topic() or "").removeprefix(f"{prefix}.")] += 1
        if batch:
            last = time.monotonic()
    consumer.close()
    return dict(counts)


def measure(
    kafka: KafkaConfig,
    python: Path,
    tree: tuple[Path, dict[str, str]],
    traffic: Path,
    rules: Path,
    label: str,
) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    path, env = tree
    args = ["child", kafka.bootstrap, str(traffic), str(rules), prefix]
    result = run_child(python, path, args, env)
    records = count_records(kafka, prefix)
    produced = sum(n for topic, n in records.items() if topic != "events.raw")
    events = result["events"]
    result |= {
        "label": label,
        "prefix": prefix,
        "events_per_cpu_s": round(events / result["cpu_s"]),
        "us_per_event": {
            name: round(cpu / events * 1e6, 1) for name, cpu in result["worker_cpu_s"].items()
        },
        "records": records,
        "produced_per_event": round(produced / events, 2),
    }
    print(
        f"  {label} ({result.get('core')}): {result['events_per_cpu_s']:,} events/CPU-s, "
        f"{result['produced_per_event']} produced/event, µs/event {result['us_per_event']}",
        file=sys.stderr,
    )
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median rate, with every round's rate and the median µs/event per worker."""
    ordered = sorted(runs, key=lambda r: r["events_per_cpu_s"])
    middle = dict(ordered[(len(ordered) - 1) // 2])  # the lower median of an even count
    middle["rounds_events_per_cpu_s"] = [r["events_per_cpu_s"] for r in runs]
    middle["us_per_event"] = {
        name: statistics.median(r["us_per_event"][name] for r in runs)
        for name in middle["us_per_event"]
    }
    return middle


def run_all(
    baseline: str, counts: list[int], events: int, quix: bool, as_json: bool, repeat: int = 3
) -> None:
    python = Path(sys.executable)
    results: dict[str, Any] = {
        "benchmark": "pipeline",
        "events": events,
        "baseline": baseline,
        "rounds": repeat,
    }
    runs: dict[str, dict[int, dict[str, Any]]] = {"current": {}, "reference": {}, "baseline": {}}
    with tempfile.TemporaryDirectory() as tmp, cluster() as kafka:
        folder = Path(tmp)
        traffic = traffic_file(folder, events)
        trees = {
            "current": (ROOT / "src", {}),
            "reference": (ROOT / "src", {"WAYLINE_NATIVE": "0"}),
        }
        with baseline_tree(baseline) if baseline else _none() as old:
            if old is not None:
                trees["baseline"] = (old, {})
            for count in counts:  # interleaved, so drift of the machine hits both alike
                rules = rules_file(folder, count)
                rounds: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
                for round_no in range(repeat):
                    for label, tree in trees.items():
                        print(f"{count} segments, {label}, round {round_no + 1}", file=sys.stderr)
                        rounds[label].append(measure(kafka, python, tree, traffic, rules, label))
                for label, measured in rounds.items():
                    runs[label][count] = median_run(measured)
        first = runs["current"][counts[0]]
        in_raw = first["records"]["events.raw"]  # what the collector accepted of the traffic
        raw = measure_raw(kafka, f"{first['prefix']}.events.raw", PARTITIONS, in_raw)
        results["raw_consume_events_per_cpu_s"] = round(raw["events"] / raw["cpu_s"])
        if quix and QUIX_PYTHON.is_file():
            resolved = first["records"].get("events.resolved", 0)
            topic = f"{first['prefix']}.events.resolved"
            found = run_child(
                QUIX_PYTHON, ROOT / "src", ["quix", kafka.bootstrap, topic, str(resolved)]
            )
            results["quix_fold_us_per_event"] = round(found["cpu_s"] / found["events"] * 1e6, 1)
            results["quix_fold_events_per_cpu_s"] = round(found["events"] / found["cpu_s"])
        elif quix:
            print(
                f"no {QUIX_PYTHON}: `make bench` creates it; quixstreams skipped", file=sys.stderr
            )
    results |= summarize(runs, counts)
    save_results("pipeline", results)
    plot(results, runs, counts)
    print(json.dumps(results) if as_json else json.dumps(results, indent=2))


def _none() -> Any:
    from contextlib import nullcontext

    return nullcontext(None)


def summarize(runs: dict[str, dict[int, dict[str, Any]]], counts: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for count in counts:
        now = runs["current"][count]
        out[f"events_per_cpu_s_{count}"] = now["events_per_cpu_s"]
        out[f"produced_per_event_{count}"] = now["produced_per_event"]
        reference = runs["reference"].get(count)
        if reference is not None:
            out[f"reference_events_per_cpu_s_{count}"] = reference["events_per_cpu_s"]
            out[f"native_vs_reference_{count}"] = round(
                now["events_per_cpu_s"] / reference["events_per_cpu_s"], 2
            )
        was = runs["baseline"].get(count)
        if was is not None:
            out[f"baseline_events_per_cpu_s_{count}"] = was["events_per_cpu_s"]
            out[f"baseline_produced_per_event_{count}"] = was["produced_per_event"]
            out[f"speedup_{count}"] = round(now["events_per_cpu_s"] / was["events_per_cpu_s"], 2)
    return out


def plot(
    results: dict[str, Any], runs: dict[str, dict[int, dict[str, Any]]], counts: list[int]
) -> None:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    labels = [label for label in ("baseline", "reference", "current") if runs[label]]
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        values = [runs[label][c]["events_per_cpu_s"] if c in runs[label] else 0 for c in counts]
        offset = (i - (len(labels) - 1) / 2) * width
        axis.bar([x + offset for x in range(len(counts))], values, width, label=label)
    axis.set_xticks(range(len(counts)), [f"{c} segments" for c in counts])
    axis.set_ylabel("events per CPU-second")
    axis.legend()
    axis.set_title("validate → identity → profile, embedded broker")
    figure.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    figure.savefig(RESULTS / "pipeline.svg")
