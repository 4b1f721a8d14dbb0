"""``wayline demo``: the platform, a traffic simulator and a live terminal view.

At the end the demo checks its own books: every event the simulator sent must come out of the
pipeline exactly once, validated or dead-lettered. It exits non-zero when that is not so. Then
it writes the run's report (``wayline report``'s page) into the data directory.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from wayline.config.workspace import DEMO_CONFIG, WaylineConfig
from wayline.connectors.simulator import Simulator, utc_now
from wayline.platform import Platform
from wayline.receivers import DemoReceivers
from wayline.settings import Settings
from wayline.streams.observer import Observer, Snapshot
from wayline.streams.validate import CHANNEL_HEADER, SOURCE_HEADER


@dataclass(frozen=True)
class DemoResult:
    seconds: float
    sent: int
    broken: int
    final: Snapshot
    report: Path | None = None  # the HTML report of the run (None: analytics off)

    @property
    def balanced(self) -> bool:
        return self.final.validated + self.final.dead_lettered == self.sent


class Demo:
    """Runs the demo for ``duration_s`` seconds or until ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        config: WaylineConfig,
        duration_s: float,
        sessions_per_s: float,
        seed: int,
        console: Console,
        receivers: DemoReceivers | None = None,
    ) -> None:
        self.receivers = receivers
        self.platform = Platform(settings, config)
        self.duration_s = duration_s
        self.simulator = Simulator(seed=seed, sessions_per_s=sessions_per_s)
        self.console = console
        self.stopping = threading.Event()
        self.sources = {s.name: s for s in DEMO_CONFIG.sources}

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> DemoResult:
        self.platform.start()
        observer = Observer(self.platform.kafka, self.platform.topics)
        observer.start()
        try:
            since = utc_now() - timedelta(minutes=1)
            result = self._drive(observer)
            return replace(result, report=self._report(since))
        finally:
            observer.stop()
            self.platform.stop()

    def _drive(self, observer: Observer) -> DemoResult:
        from rich.live import Live

        with self.console.status("waiting for the workers to join their consumer groups"):
            if not self.platform.wait_until_assigned():
                raise RuntimeError("the workers did not get their partitions; see the log above")
        producer = self.platform.kafka.producer()
        started = time.monotonic()
        sent = 0
        with Live(console=self.console, refresh_per_second=4, transient=False) as live:
            while not self.stopping.is_set() and time.monotonic() - started < self.duration_s:
                if self.platform.failed.is_set():
                    raise RuntimeError("a worker failed; see the log above")
                for source, event in self.simulator.due(utc_now()):
                    self._send(producer, source, event)
                    sent += 1
                producer.poll(0)
                live.update(self._view(observer.snapshot(), time.monotonic() - started, sent))
                self.stopping.wait(0.05)
            producer.flush(30)
            producer.close()
            final = self._drain(observer, sent)
            live.update(self._view(final, time.monotonic() - started, sent))
        return DemoResult(time.monotonic() - started, sent, self.simulator.broken, final)

    def _report(self, since: datetime) -> Path | None:
        """The run's report, once the analytics sink has written what the pipeline made (its
        row count has stood still for two seconds, or 30 s passed)."""
        warehouse = self.platform.analytics
        if warehouse is None:
            return None
        from wayline import kpireport
        from wayline.report import render

        with self.console.status("writing the report: waiting for the analytics sink"):
            client = warehouse.client()
            count = f"SELECT count() FROM {warehouse.database}.events"
            seen, still, deadline = -1, 0.0, time.monotonic() + 30
            while still < 2 and time.monotonic() < deadline:
                now = int(client.query(count).result_rows[0][0])
                still = still + 0.5 if now == seen else 0.0
                seen = now
                time.sleep(0.5)
            period = kpireport.Period(since, utc_now() + timedelta(minutes=1))
            doc = kpireport.report(client, warehouse.database, period)
        path = Path(self.platform.settings.data_dir) / "report.html"
        path.write_text(render(doc, "Wayline demo report"), encoding="utf-8")
        return path

    def _send(self, producer: Any, source: str, event: dict[str, Any]) -> None:
        key = event.get("userId") or event.get("anonymousId") or event["messageId"]
        headers = [(SOURCE_HEADER, source.encode())]
        headers.append((CHANNEL_HEADER, self.sources[source].channel.encode()))
        while True:
            try:
                producer.produce(
                    self.platform.topics.raw, orjson.dumps(event), key, headers=headers
                )
                return
            except BufferError:
                producer.poll(0.05)

    @staticmethod
    def _drain(observer: Observer, sent: int, timeout_s: float = 20.0) -> Snapshot:
        deadline = time.monotonic() + timeout_s
        snap = observer.snapshot()
        while snap.validated + snap.dead_lettered < sent and time.monotonic() < deadline:
            time.sleep(0.1)
            snap = observer.snapshot()
        return snap

    def _view(self, snap: Snapshot, elapsed: float, sent: int) -> RenderableType:
        flow = Table.grid(padding=(0, 2))
        flow.add_row("elapsed", f"{elapsed:5.1f} s of {self.duration_s:.0f} s")
        flow.add_row("sent", f"{sent:,}  ({self.simulator.broken} deliberately broken)")
        flow.add_row("validated", f"{snap.validated:,}")
        flow.add_row("dead-lettered", f"{snap.dead_lettered:,}")
        flow.add_row("events/s", f"{snap.rate_per_s:,.0f}")
        flow.add_row("latency p50/p99", f"{snap.latency_p50_ms:.0f} / {snap.latency_p99_ms:.0f} ms")
        flow.add_row("customers seen", f"{snap.customers_seen:,}")
        flow.add_row("profiles", f"{snap.profiles:,}")
        return Group(
            Panel(flow, title=f"Wayline demo · Kafka {self.platform.settings.bootstrap}"),
            Columns(
                [
                    _counts("channels", snap.by_channel),
                    _counts("top events", snap.by_event),
                    _counts("dead-letter reasons", snap.dlq_reasons),
                    _counts("segment sizes", snap.segment_sizes),
                ]
            ),
            Panel("\n".join(snap.latest_triggers) or "(none yet)", title="latest triggers"),
            *self._deliveries(snap),
        )

    def _deliveries(self, snap: Snapshot) -> list[RenderableType]:
        """What the contact policy decided, and what the local receivers got."""
        panels: list[RenderableType] = [_counts("deliveries by outcome", snap.deliveries)]
        if self.receivers is not None:
            counts, latest = self.receivers.snapshot()
            got = Table.grid(padding=(0, 2))
            for name, count in sorted(counts.items()):
                got.add_row(name, f"{count:,}")
            got.add_row("", "")
            for line in latest:
                got.add_row("", line)
            panels.append(Panel(got if counts else "(nothing yet)", title="local receivers"))
        return [Columns(panels)]


def _counts(title: str, counts: dict[str, int]) -> Panel:
    table = Table.grid(padding=(0, 2))
    for name, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(name, f"{count:,}")
    return Panel(table if counts else "(none yet)", title=title)
