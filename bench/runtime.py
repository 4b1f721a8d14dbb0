"""Runtime benchmark: a stateful fold on Wayline's runtime against raw consume and faust.

All three read the same events from the same broker in one run, and each is charged the CPU
time of its own process (the broker's excluded):

- ``raw``: confluent-kafka consume + orjson decode, no state — the physical limit;
- ``fold``: the Wayline worker summing an amount per key in RocksDB, every change written to the
  compacted changelog, commit markers and offsets committed per batch;
- ``faust``: the same fold as a faust-streaming agent with a table (the ``bench`` extra).

raw and fold are charged from the moment their consumer starts (librdkafka fetches ahead, so
that work happens before the first event); faust only from its first event, which favours it.

    python -m bench.runtime --json          # make bench-runtime
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TopicPartition

from wayline.schemas.topics import Topics
from wayline.streams.admin import ensure_topics
from wayline.streams.broker import EmbeddedBroker, free_port
from wayline.streams.clients import KafkaConfig
from wayline.streams.envelope import Envelope, Output
from wayline.streams.task import TaskContext
from wayline.streams.worker import Worker, WorkerOptions

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


@contextmanager
def cluster() -> Iterator[KafkaConfig]:
    external = os.environ.get("WAYLINE_KAFKA_BOOTSTRAP")
    if external:
        yield KafkaConfig(external)
        return
    with EmbeddedBroker(port=free_port()) as broker:
        yield KafkaConfig(broker.bootstrap)


def produce_events(kafka: KafkaConfig, topic: str, events: int, keys: int) -> None:
    producer = kafka.producer(**{"linger.ms": 20, "batch.num.messages": 10_000})
    for i in range(events):
        value = orjson.dumps({"id": f"e{i}", "amount": i % 100 + 1})
        while True:
            try:
                producer.produce(topic, value, f"customer-{i % keys}".encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    producer.close()


def measure_raw(kafka: KafkaConfig, topic: str, partitions: int, events: int) -> dict[str, float]:
    cpu, wall = time.process_time(), time.monotonic()  # fetching starts at assign: count it
    consumer = kafka.consumer(f"raw-{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 10})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    deadline = time.monotonic() + 300
    while seen < events and time.monotonic() < deadline:
        for message in consumer.consume(10_000, 0.5):
            if message.error() is None:
                orjson.loads(message.value() or b"{}")
                seen += 1
    result = {"events": seen, "cpu_s": time.process_time() - cpu, "wall_s": time.monotonic() - wall}
    consumer.close()
    return result


class BenchFold:
    """The fold under test: a running sum per key in the ``sums`` store; no outputs."""

    def __init__(self) -> None:
        self.first_wall: float | None = None

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]:
        if self.first_wall is None:
            self.first_wall = time.monotonic()
        sums = ctx.store("sums")
        key = message.key or b""
        amount = orjson.loads(message.value or b"{}")["amount"]
        sums.put(key, str(int(sums.get(key) or b"0") + amount).encode())
        return []


def measure_fold(kafka: KafkaConfig, topics: Topics, events: int) -> dict[str, float]:
    fold = BenchFold()
    with tempfile.TemporaryDirectory() as state:
        options = WorkerOptions(
            batch_size=2_000,
            state_dir=Path(state),
            consumer_overrides={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
        )
        worker = Worker(
            "fold",
            f"{topics.prefix}.fold",
            [topics.raw],
            fold,
            kafka,
            options=options,
            changelogs={"sums": topics.changelog("fold", "sums")},
        )
        thread = threading.Thread(target=worker.run, daemon=True)
        start_cpu = time.process_time()  # consumer start, group join (idle), fetch, fold, commits
        thread.start()
        deadline = time.monotonic() + 600
        while worker.stats().events_in < events and time.monotonic() < deadline:
            time.sleep(0.005)
        cpu, wall = time.process_time(), time.monotonic()
        worker.stop()
        thread.join(60)
    assert fold.first_wall is not None, "the fold saw no events"
    processed = worker.stats().events_in
    return {"events": processed, "cpu_s": cpu - start_cpu, "wall_s": wall - fold.first_wall}


def measure_faust(kafka: KafkaConfig, topic: str, partitions: int, events: int) -> dict[str, Any]:
    try:
        import faust  # noqa: F401
    except ImportError:
        return {"skipped": "faust-streaming is not installed: pip install -e '.[bench]'"}
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "faust.json"
        env = {
            **os.environ,
            "WAYLINE_BENCH_BOOTSTRAP": kafka.bootstrap,
            "WAYLINE_BENCH_TOPIC": topic,
            "WAYLINE_BENCH_EVENTS": str(events),
            "WAYLINE_BENCH_PARTITIONS": str(partitions),
            "WAYLINE_BENCH_RESULT": str(result),
        }
        command = [sys.executable, str(HERE / "faust_fold.py"), "worker", "-l", "error"]
        process = subprocess.run(
            command,
            cwd=folder,
            env=env,
            capture_output=True,
            timeout=1800,
            check=False,
        )
        if not result.exists():
            tail = process.stderr.decode(errors="replace")[-2000:]
            return {"failed": f"faust exited with {process.returncode}: {tail}"}
        data: dict[str, Any] = json.loads(result.read_text())
        return data


def rate(measured: dict[str, Any]) -> int | None:
    cpu = float(measured.get("cpu_s", 0.0))
    return round(int(measured["events"]) / cpu) if cpu > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description="Wayline runtime benchmark")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--faust-events", type=int, default=50_000, help="faust is slow")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--no-faust", action="store_true")
    args = parser.parse_args()

    with cluster() as kafka:
        topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}", partitions=args.partitions)
        ensure_topics(kafka, topics.specs({"fold": ["sums"]}))
        produce_events(kafka, topics.raw, args.events, args.keys)
        raw = measure_raw(kafka, topics.raw, args.partitions, args.events)
        fold = measure_fold(kafka, topics, args.events)
        faust_events = min(args.events, args.faust_events)
        faust = (
            {"skipped": "--no-faust"}
            if args.no_faust
            else measure_faust(kafka, topics.raw, args.partitions, faust_events)
        )
    results = summarize(args.events, raw, fold, faust)
    save_results("runtime", results)
    if args.json:
        print(json.dumps(results))
        return
    for name in ("raw", "fold", "faust"):
        print(f"{name:6s} {results[f'{name}_events_per_cpu_s'] or '-':>10} events per CPU-second")
    print(f"fold / faust = x{results['fold_vs_faust']}, fold / raw = {results['fold_vs_raw']}")


def save_results(name: str, results: dict[str, Any]) -> None:
    """``bench/results/NAME.json``, the figures bench/README.md quotes."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")


def summarize(
    events: int, raw: dict[str, Any], fold: dict[str, Any], faust: dict[str, Any]
) -> dict[str, Any]:
    raw_rate, fold_rate, faust_rate = rate(raw), rate(fold), rate(faust)
    return {
        "benchmark": "runtime",
        "events": events,
        "raw_events_per_cpu_s": raw_rate,
        "fold_events_per_cpu_s": fold_rate,
        "faust_events_per_cpu_s": faust_rate,
        "fold_vs_faust": round(fold_rate / faust_rate, 1) if fold_rate and faust_rate else None,
        "fold_vs_raw": round(fold_rate / raw_rate, 2) if fold_rate and raw_rate else None,
        "details": {"raw": raw, "fold": fold, "faust": faust},
    }


if __name__ == "__main__":
    main()
