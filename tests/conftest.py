"""Shared fixtures: one real embedded broker per test session, fresh topic names per test."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import yaml

from apachekafka import ApacheKafka
from equality import CONFIG_YAML
from receivers import HttpReceiver, http_receiver
from wayline.connectors.clickhouse import Client, connect, migrate
from wayline.connectors.webhook import WebhookSender
from wayline.schemas.topics import Topics
from wayline.streams.admin import delete_topics, ensure_topics
from wayline.streams.broker import EmbeddedBroker, free_port
from wayline.streams.clients import KafkaConfig
from wayline.streams.registry import default_registry, store_topics
from waylineproc import API_KEY, SOURCES, Running


@dataclass
class Broker:
    """The cluster of this test session, and the broker processes a test may pause."""

    kafka: KafkaConfig
    pids: list[int]
    kind: str  # "embedded", "apache" or "external"

    def pause(self) -> None:
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.pids:
            os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """``WAYLINE_KAFKA_BOOTSTRAP``; else Apache Kafka started from Maven Central artifacts when
    ``WAYLINE_TEST_BROKER=apache``; else the embedded broker."""
    external = os.environ.get("WAYLINE_KAFKA_BOOTSTRAP")
    if external:
        yield Broker(KafkaConfig(external), [], "external")
        return
    if os.environ.get("WAYLINE_TEST_BROKER", "embedded") == "apache":
        cluster = ApacheKafka(tmp_path_factory.mktemp("apache-kafka"))
        cluster.start()
        try:
            pids = [n.process.pid for n in cluster.nodes if n.process]
            yield Broker(KafkaConfig(cluster.bootstrap), pids, "apache")
        finally:
            cluster.stop()
        return
    embedded = EmbeddedBroker(port=free_port())
    embedded.start()
    try:
        assert embedded.pid is not None
        yield Broker(KafkaConfig(embedded.bootstrap), [embedded.pid], "embedded")
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def kafka(broker: Broker) -> KafkaConfig:
    """The cluster of this test session (see ``broker``)."""
    return broker.kafka


@pytest.fixture
def topics(kafka: KafkaConfig) -> Iterator[Topics]:
    """Wayline's topic set under a prefix of this test's own, created, deleted afterwards."""
    names = Topics(prefix=f"t{uuid.uuid4().hex[:10]}", partitions=3)
    specs = names.specs(store_topics(default_registry()))
    ensure_topics(kafka, specs)
    yield names
    delete_topics(kafka, [s.name for s in specs])


FAST_GROUPS = {"log_level": 3, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def _wayline(
    kafka: KafkaConfig,
    tmp_path: Path,
    *args: str,
    extra: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Running]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    config = {"sources": SOURCES, "api_keys": [API_KEY], **(extra or {})}
    (tmp_path / "wayline.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAYLINE_")}
    env = {
        **clean,
        "WAYLINE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "WAYLINE_TOPIC_PREFIX": prefix,
        "WAYLINE_PARTITIONS": "3",
        "WAYLINE_API_PORT": str(port),
        "WAYLINE_CONFIG": "wayline.yaml",
        "WAYLINE_DATA_DIR": str(tmp_path / "data"),
        # group joins take about half of session.timeout.ms on the embedded broker
        "WAYLINE_KAFKA_OPTIONS": orjson.dumps(FAST_GROUPS).decode(),
        "WAYLINE_ANALYTICS": "false",  # the tests of analytics turn it on
        "COLUMNS": "250",  # a log line per record: Running.story() reads them
        **(env or {}),
    }
    running = Running(f"http://127.0.0.1:{port}", Topics(prefix, 3), kafka, env, tmp_path)
    running.args = args
    running.start()
    try:
        yield running
    finally:
        running.stop()
        specs = running.topics.specs(store_topics(default_registry()))
        delete_topics(kafka, [s.name for s in specs])


@pytest.fixture
def wayline_up(kafka: KafkaConfig, tmp_path: Path) -> Iterator[Running]:
    """``wayline up`` as a process, on this session's broker, with topics of its own."""
    yield from _wayline(kafka, tmp_path)


@pytest.fixture
def wayline_up_analytics(kafka: KafkaConfig, tmp_path: Path) -> Iterator[Running]:
    """``wayline up`` with the analytics sink and /v1/analytics (the embedded engine)."""
    yield from _wayline(kafka, tmp_path, env={"WAYLINE_ANALYTICS": "true"})


@pytest.fixture
def kafka_up_without_profile(kafka: KafkaConfig, tmp_path: Path) -> Iterator[Running]:
    """``wayline up --skip profile``: the test runs (and kills) the profile worker itself."""
    yield from _wayline(kafka, tmp_path, "--skip", "profile", extra=TRIGGERS)


TRIGGERS: dict[str, object] = {"triggers": {"milestones": {"orders": [1, 2]}}}


@pytest.fixture
def wayline_up_with_triggers(kafka: KafkaConfig, tmp_path: Path) -> Iterator[Running]:
    """``wayline up`` with short trigger windows and the documented example segments."""
    extra: dict[str, object] = {
        "triggers": {
            "cart_abandoned": {"after": "4s"},
            "milestones": {"orders": [3], "revenue": [100]},
        },
        "segments": [
            {"name": "vip", "notify": True, "rule": {"all": [
                {"computed.revenue": {"gte": 500}},
                {"performed": {"event": "Order Completed", "at_least": 2, "within": "90d"}},
            ]}},
        ],
    }  # fmt: skip
    yield from _wayline(kafka, tmp_path, extra=extra)


@pytest.fixture
def replay_up_without_profile(kafka: KafkaConfig, tmp_path: Path) -> Iterator[Running]:
    """``wayline up --skip profile`` replaying history with the dry-run oracle's definitions."""
    extra = yaml.safe_load(CONFIG_YAML)
    yield from _wayline(kafka, tmp_path, "--skip", "profile", extra=extra)


@pytest.fixture
def wayline_up_replay(kafka: KafkaConfig, tmp_path: Path) -> Iterator[Running]:
    """``wayline up`` replaying history: event-time timers, a short idle release."""
    extra: dict[str, object] = {
        "clock": "replay",
        "reorder": {"idle": "1s"},
        "triggers": {"cart_abandoned": {"after": "60m"}, "milestones": {"orders": [1, 2]}},
        "segments": [
            {"name": "viewers", "notify": True,
             "rule": {"performed": {"event": "Product Viewed", "at_least": 3, "within": "14d"}}},
        ],
    }  # fmt: skip
    yield from _wayline(kafka, tmp_path, extra=extra)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A real local HTTP receiver (connector tests)."""
    with http_receiver() as running:
        yield running


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    """A webhook sender (connector tests), closed afterwards."""
    sending = WebhookSender()
    yield sending
    await sending.close()


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chdb runs one engine per process: every test of the session shares one data path and
    takes a database of its own."""
    return tmp_path_factory.mktemp("clickhouse")


@pytest.fixture
def warehouse(chdb_path: Path) -> Iterator[tuple[Client, str]]:
    database = f"w{uuid.uuid4().hex[:10]}"
    client = connect(None, chdb_path, database)
    yield client, database
    client.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture
def migrated(chdb_path: Path) -> Iterator[tuple[Client, str]]:
    """A database of this test's own on the shared engine, with every migration applied."""
    database = f"m{uuid.uuid4().hex[:10]}"
    client = connect(None, chdb_path, database)
    migrate(client, database)
    yield client, database
    client.command(f"DROP DATABASE IF EXISTS {database}")
