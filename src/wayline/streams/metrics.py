"""Prometheus metrics of the runtime (prometheus-client, the process's default registry).

Measured where they happen: batch latency and dead letters by reason. Read from the workers'
counters when scraped (``WorkerCollector``): events in and out, lag, retries, stalls, restore
time — nothing on the per-message path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

BATCH_SECONDS = Histogram(
    "wayline_worker_batch_seconds",
    "Time to process and commit one batch (steps, outputs acknowledged, stores written)",
    ["worker"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEAD_LETTERS = Counter(
    "wayline_dead_letters_total", "Records written to the dead-letter topic", ["worker", "reason"]
)

DELIVERIES = Counter(
    "wayline_deliveries_total",
    "Delivery decisions and attempts, by subscription, channel type, status and reason",
    ["subscription", "channel", "status", "reason"],
)

_COUNTERS = {
    "events_in": "Records taken from the worker's input topics",
    "events_out": "Records the worker produced (outputs, not dead letters)",
    "timers_fired": "Timers fired",
    "retries": "Batches retried after a broker fault",
    "stalls": "Times the worker was found stalled (lag and no progress)",
    "commits": "Batches committed",
    "consumers_renewed": "Consumers replaced because their group coordinator was lost",
}
_GAUGES = {
    "lag": "Messages behind the ends of the assigned partitions",
    "timers_pending": "Timers scheduled",
    "restore_seconds": "Time spent restoring local state from changelogs",
    "restore_cpu_seconds": "CPU time spent restoring local state from changelogs",
    "stalled": "1 while the worker is stalled",
}


class WorkerCollector(Collector):
    """The counters of every worker of this process, as they are at scrape time."""

    def __init__(self, stats: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        workers = self.stats()
        for name, help_text in _COUNTERS.items():
            family = CounterMetricFamily(f"wayline_worker_{name}", help_text, labels=["worker"])
            for worker, stats in workers.items():
                family.add_metric([worker], float(stats.get(name, 0)))
            yield family
        for name, help_text in _GAUGES.items():
            gauge = GaugeMetricFamily(f"wayline_worker_{name}", help_text, labels=["worker"])
            for worker, stats in workers.items():
                gauge.add_metric([worker], float(stats.get(name, 0)))
            yield gauge
        assigned = GaugeMetricFamily(
            "wayline_worker_partitions", "Input partitions assigned", labels=["worker"]
        )
        for worker, stats in workers.items():
            assigned.add_metric([worker], float(len(stats.get("assigned", []))))
        yield assigned
