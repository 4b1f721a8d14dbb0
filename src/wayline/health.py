"""Liveness and readiness that tell the truth.

- ``GET /health`` (liveness): 200 ``{"status": "ok"}`` while the process serves requests.
- ``GET /ready`` (readiness): 200 ``{"status": "ready"}`` when the broker answers, every worker
  of this process holds partitions (restored), none is stalled or stopped and none is waiting
  out a broker fault; else 503 ``{"status": "not_ready"}``. Nothing more without a key.
- ``GET /v1/status`` (``Authorization: Bearer <api key>``): the same verdict with its reasons,
  the cluster, and every worker's counters.

The broker is probed from a thread of its own every ``interval_s`` (a metadata request with a
short timeout), so a request to ``/ready`` never waits on a broker that does not answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wayline.streams.clients import KafkaConfig

log = logging.getLogger(__name__)

StatsSource = Callable[[], Mapping[str, Mapping[str, Any]]]


class BrokerProbe:
    """Whether the cluster answered a metadata request lately."""

    def __init__(self, kafka: KafkaConfig, interval_s: float = 2.0, timeout_s: float = 2.0):
        self.kafka = kafka
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.last_ok: float | None = None
        self.error = "not probed yet"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout_s + 2)

    @property
    def reachable(self) -> bool:
        return self.last_ok is not None and time.monotonic() - self.last_ok < 3 * self.interval_s

    def _run(self) -> None:
        admin = self.kafka.admin(log_level=0)
        while not self._stop.is_set():
            try:
                admin.list_topics(timeout=self.timeout_s)
                self.last_ok = time.monotonic()
                self.error = ""
            except Exception as exc:
                self.error = str(exc)
            self._stop.wait(self.interval_s)


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reasons: list[str]
    degraded: list[str] = field(default_factory=list)  # wrong, but not a reason to be unready


# Workers whose trouble leaves the process ready: the collector and the pipeline go on while
# ClickHouse is away (the analytics sink waits and catches up).
SIDE_WORKERS = frozenset({"analytics"})


def verdict(probe: BrokerProbe, workers: Mapping[str, Mapping[str, Any]]) -> Verdict:
    """Ready, or the reasons it is not."""
    reasons: list[str] = []
    degraded: list[str] = []
    if not probe.reachable:
        since = "" if probe.last_ok is None else f" for {time.monotonic() - probe.last_ok:.0f} s"
        reasons.append(f"broker {probe.kafka.bootstrap} not answering{since}: {probe.error}")
    for name, stats in workers.items():
        found = degraded if name in SIDE_WORKERS else reasons
        if stats.get("failed"):
            reasons.append(f"worker {name} stopped: {stats['failed']}")
        elif not stats.get("assigned"):
            reasons.append(f"worker {name} holds no partitions (joining, restoring or idle)")
        if stats.get("stalled"):
            found.append(f"worker {name} stalled: {stats.get('lag', 0)} messages behind")
        if stats.get("retrying"):
            found.append(f"worker {name} retrying: {stats['retrying']}")
    return Verdict(not reasons, reasons, degraded)
