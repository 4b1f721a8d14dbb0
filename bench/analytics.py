"""Analytics benchmark: rows per second into the embedded ClickHouse engine (chdb) through the
sink's own code, and KPI query times over ≥ 1M events — each against a baseline of the same run.

- ``sink_rows_per_s``: resolved-event records (as the broker hands them over: key, JSON value,
  headers) through ``AnalyticsStep.add``/``flush`` — decode, row, insert with a deduplication
  token — in batches of 10,000. Baseline in the same run: clickhouse-connect inserting the same
  rows, already built, in the same batches (what the engine and the client take alone).
- ``queries``: every KPI of ``connectors.kpis`` over the whole table (``FINAL``, as the API
  reads it, parts as the load left them), median of 3 runs. Baseline in the same run:
  ``SELECT sum(revenue) FROM events FINAL``, the scan every KPI starts with.

    python -m bench.analytics --json [--events 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.runtime import save_results
from wayline.connectors import kpis
from wayline.connectors.clickhouse import Client, connect, migrate
from wayline.connectors.warehouse import TABLES
from wayline.schemas.topics import Topics
from wayline.streams.analytics import AnalyticsStep
from wayline.streams.envelope import Envelope

START = datetime(2025, 1, 1, tzinfo=UTC)
BATCH = 10_000
NAMES = ("Product Viewed", "Product Added", "Order Completed")


def records(events: int, profiles: int, seed: int = 3) -> list[Envelope]:
    rng = random.Random(seed)
    topic = Topics("bench").resolved
    out = []
    for i in range(events):
        pid = f"p{rng.randrange(profiles):06d}"
        name = rng.choices(NAMES, weights=(60, 25, 15))[0]
        at = (START + timedelta(seconds=rng.randrange(365 * 86_400))).isoformat()
        props: dict[str, Any] = {"product_id": f"P{i % 500}"}
        if name == "Order Completed":
            props |= {"order_id": f"o{i}", "revenue": round(rng.uniform(5, 200), 2)}
        doc = {"profile_id": pid, "messageId": f"m{i}", "type": "track", "event": name,
               "timestamp": at, "receivedAt": at, "context": {"channel": "web"},
               "properties": props}  # fmt: skip
        out.append(Envelope(topic, i % 6, i // 6, pid.encode(), orjson.dumps(doc), 0,
                            (("wayline.kind", b"event"),)))  # fmt: skip
    return out


def timed(run: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_sink(client: Client, database: str, batch: list[Envelope]) -> dict[str, float]:
    step = AnalyticsStep(Topics("bench"), lambda: client, database)

    def run() -> None:
        for start in range(0, len(batch), BATCH):
            for message in batch[start : start + BATCH]:
                step.add(message, message.partition)
            for task in step.pending():
                step.flush(task)

    wall, cpu = timed(run)
    return {"rows": len(batch), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "rows_per_s": round(len(batch) / wall)}  # fmt: skip


def measure_insert(client: Client, database: str, batch: list[Envelope]) -> dict[str, float]:
    table = TABLES["events.resolved"]
    rows = []
    for m in batch:
        for row in table.rows(m.key, orjson.loads(m.value or b"null"), dict(m.headers)):
            rows.append([*row, m.partition, m.offset])

    def run() -> None:
        for start in range(0, len(rows), BATCH):
            client.insert(f"{database}.events", rows[start : start + BATCH],
                          column_names=list(table.columns))  # fmt: skip

    wall, cpu = timed(run)
    return {"rows": len(rows), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "rows_per_s": round(len(rows) / wall)}  # fmt: skip


def measure_queries(client: Client, database: str) -> dict[str, Any]:
    since, until = START, START + timedelta(days=366)
    queries: dict[str, Callable[[], object]] = {
        "baseline_scan": lambda: client.query(f"SELECT sum(revenue) FROM {database}.events FINAL"),
        "orders": lambda: kpis.orders(client, database, since, until),
        "monthly_active_buyers": lambda: kpis.monthly_active_buyers(client, database, since, until),
        "churn_by_cohort": lambda: kpis.churn_by_cohort(client, database, since, until),
        "cohort_retention": lambda: kpis.cohort_retention(client, database, since, until),
        "conversion_funnel": lambda: kpis.conversion_funnel(client, database, since, until),
    }  # fmt: skip
    seconds = {}
    for name, run in queries.items():
        run()  # warm: the first read of a part loads it
        seconds[name] = statistics.median(timed(run)[0] for _ in range(3))
    base = seconds["baseline_scan"]
    return {name: {"median_s": round(s, 3), "vs_scan": round(s / base, 1)}
            for name, s in seconds.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    batch = records(args.events, args.profiles)
    with tempfile.TemporaryDirectory(prefix="wayline-bench-") as data:
        client = connect(None, Path(data), "bench_sink")
        for database in ("bench_sink", "bench_insert"):
            client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
            migrate(client, database)
        insert = measure_insert(client, "bench_insert", batch)
        sink = measure_sink(client, "bench_sink", batch)
        queries = measure_queries(client, "bench_sink")
    results = {
        "benchmark": "analytics",
        "events": args.events,
        "profiles": args.profiles,
        "sink_rows_per_s": sink["rows_per_s"],
        "insert_rows_per_s": insert["rows_per_s"],
        "sink_vs_insert": round(sink["rows_per_s"] / insert["rows_per_s"], 2),
        "queries": queries,
        "details": {"sink": sink, "insert": insert},
    }
    save_results("analytics", results)
    print(json.dumps(results, indent=2) if args.json else results)


if __name__ == "__main__":
    main()
