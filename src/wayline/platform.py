"""Start and stop the whole platform in one process: broker, topics, workers, HTTP API.

Start order: broker (unless external) → topics → workers → API. Stop order is the reverse, so
workers finish and commit their last batch while the broker still runs.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wayline import native
from wayline.api import ApiServer
from wayline.config.workspace import WaylineConfig
from wayline.connectors.links import Links, link_secret
from wayline.connectors.retries import RetrySchedule
from wayline.datadir import DataDirLocks
from wayline.schemas.errors import ConfigError, RetryableError, SystemicFailure
from wayline.schemas.topics import Topics
from wayline.segments.triggers import trigger_types
from wayline.settings import Settings
from wayline.streams.admin import TopicWatch, ensure_topics, wait_until_ready
from wayline.streams.broker import EmbeddedBroker, port_in_use
from wayline.streams.clients import KafkaConfig
from wayline.streams.definitions import DefinitionsView, Rules
from wayline.streams.memory import tune_garbage_collector
from wayline.streams.registry import WorkerContext, WorkerSpec, default_registry, store_topics
from wayline.streams.routes import DeliverySetup
from wayline.streams.worker import Worker, WorkerOptions
from wayline.subscriptions import LiveSubscriptions
from wayline.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class _Running:
    worker: Worker
    make: Callable[[], Worker]
    thread: threading.Thread = field(default_factory=threading.Thread)
    error: BaseException | None = None
    restarts: deque[float] = field(default_factory=lambda: deque(maxlen=RESTARTS))


RESTARTS = 5  # a worker failing this many times within RESTART_WINDOW_S stops Wayline
RESTART_WINDOW_S = 300.0


@dataclass
class Platform:
    """Everything ``wayline up`` runs. ``start()`` returns once all parts are serving."""

    settings: Settings
    config: WaylineConfig
    workers: list[str] | None = None
    api: bool = True
    broker_only: bool = False
    registry: dict[str, WorkerSpec] = field(default_factory=default_registry)
    broker: EmbeddedBroker | None = None
    running: list[_Running] = field(default_factory=list)
    api_server: ApiServer | None = None
    failed: threading.Event = field(default_factory=threading.Event)
    definitions: DefinitionsView | None = None
    locks: DataDirLocks = field(init=False)
    warehouse: Warehouse | None = field(init=False)
    subscriptions: LiveSubscriptions = field(init=False)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watch: TopicWatch | None = None

    def __post_init__(self) -> None:
        self.locks = DataDirLocks(self.settings.data_dir)
        self.subscriptions = LiveSubscriptions(self.config)
        self.warehouse = Warehouse(self.settings) if self.settings.analytics else None

    @property
    def names(self) -> list[str]:
        """The workers this process runs."""
        if self.workers is not None:
            return self.workers
        return [n for n in self.registry if n != "analytics" or self.warehouse is not None]

    @property
    def analytics(self) -> Warehouse | None:
        """ClickHouse, when this process may query it: a server, or the embedded engine when
        this process runs the analytics worker (which owns it)."""
        w = self.warehouse
        return w if w is not None and (not w.embedded or "analytics" in self.names) else None

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.topic_prefix, self.settings.partitions)

    @property
    def kafka(self) -> KafkaConfig:
        return KafkaConfig(self.settings.bootstrap, dict(self.settings.kafka_options))

    def start(self) -> None:
        try:
            self._claim()
            self._start_broker()
            self._warn_about_config()
            created = ensure_topics(
                self.kafka,
                self.topics.specs(store_topics(self.registry)),
                self.settings.replication_factor,
            )
            log.info("topics: %d created with prefix %r", len(created), self.topics.prefix)
            if self.broker_only:
                return
            log.info(native.describe())
            tune_garbage_collector()
            if "profile" in self.names or "deliver" in self.names:
                self._follow_definitions()
            for name in self.names:
                self._start_worker(self.registry[name])
            if self.api:
                self.api_server = ApiServer(
                    self.settings, self.config, self.worker_stats, self.analytics
                )
                self.api_server.start()
        except BaseException:
            self.stop()
            raise

    def _claim(self) -> None:
        """Before touching anything: this process's ports, and the data directory's locks of
        what it runs (with the embedded broker, every worker's while stale state is cleared)."""
        s = self.settings
        wanted = [("WAYLINE_API_PORT", s.api_host, s.api_port)] if self.api else []
        if s.embedded_broker:
            wanted.append(("WAYLINE_BROKER_PORT", s.broker_host, s.broker_port))
        for setting, host, port in wanted:
            if port_in_use(host, port):
                raise ConfigError(
                    f"setting {setting}: port {port} on {host} is already in use; choose another"
                )
        parts = [f"worker-{n}" for n in self.names] + (["api"] if self.api else [])
        engine = ["clickhouse"] if self.warehouse is not None and self.warehouse.embedded else []
        if "analytics" in self.names:
            parts += engine
        if self.settings.embedded_broker:
            parts += ["broker"] + [f"worker-{n}" for n in self.registry] + engine
        self.locks.acquire(list(dict.fromkeys(parts)))

    def _warn_about_config(self) -> None:
        if self.api and not self.config.sources:
            log.warning(
                "no sources in the config file (WAYLINE_CONFIG): the collector refuses every "
                "write key — nothing can be sent in; see README 'Configuration'"
            )
        if self.api and not self.config.api_keys:
            log.warning(
                "no api_keys in the config file (WAYLINE_CONFIG): the profile, segment and "
                "status API refuses every request"
            )

    def _start_broker(self) -> None:
        if not self.settings.embedded_broker:
            brokers = wait_until_ready(self.kafka, timeout_s=10)
            log.info("using Kafka at %s (%d brokers)", self.settings.bootstrap, brokers)
            return
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        # The embedded broker keeps its log in memory: local state left by an earlier run
        # belongs to a broker that is gone (its checkpoints point past the new, empty topics).
        # So do the analytics tables of the embedded engine (the records they were made of).
        for stale in (Path(self.settings.data_dir) / "state", self._engine_dir()):
            if stale is not None and stale.exists():
                shutil.rmtree(stale)
                log.info("embedded broker: cleared what an earlier run left in %s", stale)
        running = set(self.names)
        self.locks.release([f"worker-{n}" for n in self.registry if n not in running])
        if "analytics" not in running:
            self.locks.release(["clickhouse"])
        self.broker = EmbeddedBroker(
            self.settings.broker_host,
            self.settings.broker_port,
            log_path=Path(self.settings.data_dir) / "broker.log",
        )
        self.broker.start()
        log.info("embedded broker ready on %s (pid %s)", self.broker.bootstrap, self.broker.pid)

    def _engine_dir(self) -> Path | None:
        w = self.warehouse
        return Path(self.settings.data_dir) / "clickhouse" if w is not None and w.embedded else None

    def _follow_definitions(self) -> None:
        def changed(rules: Rules, latest: dict[str, Any]) -> None:
            self.subscriptions.update(rules.segments, trigger_types(rules.triggers), latest)

        self.definitions = DefinitionsView(
            self.kafka, self.topics.definitions, self.config, on_change=changed
        )
        self.definitions.start()
        if not self.definitions.wait_ready(60):
            raise RetryableError(f"{self.topics.definitions} could not be read to its end in 60 s")

    def _start_worker(self, spec: WorkerSpec) -> None:
        context = WorkerContext(
            topics=self.topics,
            kafka=self.kafka,
            phone_region=self.settings.default_phone_region,
            identity_rules=self.config.identity.rules(),
            segments=self.config.compiled_segments(),
            triggers=self.config.triggers.config(),
            definitions=self._rules if self.definitions is not None else None,
            reorder_window_ms=self.config.reorder.window_ms(),
            reorder_idle_ms=self.config.reorder.idle_ms(),
            delivery=DeliverySetup(
                self.subscriptions()[1],
                self.subscriptions()[2],
                RetrySchedule().scaled(self.settings.retry_scale),
                self._links().unsubscribe_url,
                live=self.subscriptions,
            ),
            options=WorkerOptions(
                stats_interval_s=self.settings.stats_interval_s,
                stall_after_s=self.settings.stall_after_s,
                state_dir=Path(self.settings.data_dir) / "state",
                clock=self.config.clock,
                grace_ms=self.settings.timer_grace_ms,
            ),
            warehouse=self.warehouse.client if self.warehouse is not None else None,
        )
        running = _Running(spec.create(context), lambda: spec.create(context))
        running.thread = threading.Thread(
            target=self._run_worker, args=(running,), name=f"worker-{spec.name}", daemon=True
        )
        running.thread.start()
        self.running.append(running)
        log.info("worker %s started: %s", spec.name, spec.description)

    def _links(self) -> Links:
        secret = link_secret(self.settings.link_secret, self.settings.data_dir)
        return Links(secret, self.settings.base_url)

    def _run_worker(self, running: _Running) -> None:
        """Supervise one worker: a crash (not a systemic failure, not a configuration error)
        starts it again from its committed state, with a pause that doubles each time; the
        fifth crash within five minutes stops Wayline."""
        while True:
            try:
                running.worker.run()
                return
            except (SystemicFailure, ConfigError) as exc:
                running.error = exc
                log.error("worker %s stopped: %s", running.worker.name, exc)
            except Exception as exc:
                now = time.monotonic()
                running.restarts.append(now)
                if len(running.restarts) < RESTARTS or now - running.restarts[0] > RESTART_WINDOW_S:
                    pause = min(30.0, 0.5 * 2 ** (len(running.restarts) - 1))
                    log.exception(
                        "worker %s crashed (%r); starting it again in %.1f s",
                        running.worker.name, exc, pause,
                    )  # fmt: skip
                    if self._stopping.wait(pause):
                        return
                    running.worker = running.make()
                    if self._stopping.is_set():
                        return
                    continue
                running.error = exc
                log.exception(
                    "worker %s crashed %d times in 5 minutes", running.worker.name, RESTARTS
                )
            self.failed.set()
            return

    def _rules(self) -> Rules:
        assert self.definitions is not None
        return self.definitions.rules

    def topics_lost(self) -> bool:
        """The cluster answers but Wayline's topics are gone (a broker that came back empty):
        nothing can go on, and waiting would only wedge."""
        if self._watch is None:
            self._watch = TopicWatch(self.kafka, self.topics.raw)
        return self._watch.lost()

    def wait_until_assigned(self, timeout_s: float = 60.0) -> bool:
        """Block until every worker has joined its group and holds partitions (or a worker
        failed, or the timeout passed); True when all are assigned."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.failed.is_set():
            if all(r.worker.stats().assigned for r in self.running):
                return True
            time.sleep(0.05)
        return False

    def worker_stats(self) -> dict[str, dict[str, object]]:
        out = {}
        for r in self.running:
            stats: dict[str, object] = vars(r.worker.stats())
            if r.error is not None or not r.thread.is_alive():
                stats["failed"] = repr(r.error) if r.error is not None else "thread ended"
            out[r.worker.name] = stats
        return out

    def stop(self) -> None:
        """Stop in reverse start order; safe to call more than once."""
        if self.api_server is not None:
            self.api_server.stop()
            self.api_server = None
        self._stopping.set()
        for running in self.running:
            running.worker.stop()
        deadline = time.monotonic() + 20  # all of them, not each: SIGTERM ends us within 30 s
        for running in self.running:
            running.thread.join(timeout=max(0.1, deadline - time.monotonic()))
            if running.thread.is_alive():
                log.warning("worker %s did not stop in time; leaving it", running.worker.name)
        self.running.clear()
        if self.definitions is not None:
            self.definitions.stop()
            self.definitions = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        self.locks.release()
